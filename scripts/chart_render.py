"""Render the Tripline chart offline with the real Helm SDK (helm-python-sdk), for every values
profile: used by the tests in tests/deploy, the golden renders (`make charts-golden`), the image
run script and the chart README generator.

    uv run python scripts/chart_render.py --profile prod          # print a profile's render
    uv run python scripts/chart_render.py --write-golden           # refresh helm/golden/
    uv run python scripts/chart_render.py --check-golden           # fail if helm/golden/ is stale
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml
from helm_python import _native  # `render` options the public wrapper does not expose yet

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "tripline"
GOLDEN = ROOT / "helm" / "golden"
RELEASE = "tripline"
NAMESPACE = "tripline"

# Profile -> values files layered over the chart's values.yaml (as `helm -f` would).
PROFILES: dict[str, list[str]] = {
    "default": [],
    "dev": ["values-dev.yaml"],
    "dev-databases": ["values-dev-databases.yaml"],
    "ci": ["values-ci.yaml"],
    "prod": ["values-prod.yaml"],
}
# Release name each profile is installed under (the dev databases are a release of their own).
PROFILE_RELEASES = {"dev-databases": "tripline-data"}
# The profiles whose render is committed under helm/golden/ (`default` needs a Secret name).
GOLDEN_PROFILES = ["dev", "dev-databases", "ci", "prod"]

# The Prometheus Operator CRDs a production cluster serves: renders of `prod` assume them, so the
# golden file shows the ServiceMonitor/PodMonitor/PrometheusRule objects a real install creates.
MONITORING_APIS = [
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
]
PROFILE_API_VERSIONS = {"prod": MONITORING_APIS}

# Kubernetes versions the chart supports: the oldest and the newest are validated in tests.
OLDEST_KUBERNETES = "1.30.0"
NEWEST_KUBERNETES = "1.37.0"


def deep_merge(base: Any, override: Any) -> Any:
    """Helm's coalescing of values files: maps merge, anything else replaces, null deletes."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def profile_values(profile: str, *overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The user-supplied values of a profile (its files, then `overrides`), chart defaults aside."""
    values: dict[str, Any] = {}
    for name in PROFILES[profile]:
        values = deep_merge(values, yaml.safe_load((CHART / name).read_text()) or {})
    for override in overrides:
        values = deep_merge(values, dict(override))
    return values


@dataclass
class Render:
    """A chart render: its manifests (hooks included) per template, and NOTES.txt."""

    templates: dict[str, str]
    documents: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.kind(kind):
            if doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"no {kind} named {name}")

    def text(self) -> str:
        """The render as one YAML stream, like `helm template` (sorted, with Source comments)."""
        parts = []
        for path in sorted(self.templates):
            if path.endswith("NOTES.txt"):
                continue
            for chunk in _split(self.templates[path]):
                parts.append(f"---\n# Source: {path}\n{chunk.strip()}\n")
        return "".join(parts)


def _split(stream: str) -> Iterable[str]:
    for chunk in stream.split("\n---"):
        chunk = chunk.strip().removeprefix("---").strip()
        if chunk and yaml.safe_load(chunk) is not None:
            yield chunk


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    kube_version: str | None = None,
    api_versions: Iterable[str] = (),
    is_upgrade: bool = False,
) -> Render:
    """Validate `values` (merged with the chart's) against values.schema.json, then render.

    Raises helm_python.HelmError with Helm's own message on a schema violation or a `fail`.
    """
    helm_python.validate_release_name(release)
    values = dict(values or {})
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(values))
        options: dict[str, Any] = {
            "name": release,
            "namespace": namespace,
            "is_install": not is_upgrade,
            "is_upgrade": is_upgrade,
        }
        if kube_version:
            options["kube_version"] = f"v{kube_version.lstrip('v')}"
        if api_versions:
            options["api_versions"] = list(api_versions)
        raw = _native.call_string(
            "helm_render", chart._raw(), json.dumps(values), json.dumps(options)
        )
    templates: dict[str, str] = json.loads(raw)
    result = Render(templates=templates)
    for path in sorted(templates):
        if path.endswith("NOTES.txt"):
            result.notes = templates[path]
            continue
        result.documents.extend(yaml.safe_load(chunk) for chunk in _split(templates[path]))
    return result


def render_profile(profile: str, *overrides: Mapping[str, Any], **kwargs: Any) -> Render:
    """Render a values profile (plus `overrides`) under its usual release name."""
    kwargs.setdefault("release", PROFILE_RELEASES.get(profile, RELEASE))
    kwargs.setdefault("api_versions", PROFILE_API_VERSIONS.get(profile, ()))
    return render(profile_values(profile, *overrides), **kwargs)


def golden_path(profile: str) -> Path:
    return GOLDEN / f"{profile}.yaml"


def golden_text(profile: str) -> str:
    release = PROFILE_RELEASES.get(profile, RELEASE)
    apis = PROFILE_API_VERSIONS.get(profile, ())
    files = " ".join(f"-f helm/tripline/{name}" for name in PROFILES[profile]) or "(defaults)"
    header = (
        f"# Golden render of the `{profile}` profile: helm template {release} helm/tripline"
        f" -n {NAMESPACE} {files}\n"
        + (f"# with these APIs in the cluster: {', '.join(apis)}\n" if apis else "")
        + "# Generated by `make charts-golden` (scripts/chart_render.py); do not edit.\n"
    )
    return header + render_profile(profile).text()


def stale_golden() -> dict[str, str]:
    """Profile -> unified diff, for every committed golden render that differs from a fresh one."""
    stale = {}
    for profile in GOLDEN_PROFILES:
        path = golden_path(profile)
        fresh = golden_text(profile)
        committed = path.read_text() if path.exists() else ""
        if committed != fresh:
            diff = difflib.unified_diff(
                committed.splitlines(keepends=True),
                fresh.splitlines(keepends=True),
                f"{path.relative_to(ROOT)} (committed)",
                f"{path.relative_to(ROOT)} (fresh render)",
                n=2,
            )
            stale[profile] = "".join(diff)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), help="print this profile's render")
    parser.add_argument("--write-golden", action="store_true", help="rewrite helm/golden/")
    parser.add_argument("--check-golden", action="store_true", help="fail if helm/golden/ is stale")
    args = parser.parse_args(argv)
    if args.write_golden:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for profile in GOLDEN_PROFILES:
            golden_path(profile).write_text(golden_text(profile))
            print(f"wrote {golden_path(profile).relative_to(ROOT)}")
        return 0
    if args.check_golden:
        stale = stale_golden()
        for diff in stale.values():
            sys.stdout.write(diff)
        if stale:
            print(f"stale golden renders: {', '.join(stale)}; run `make charts-golden`")
            return 1
        print("golden renders are up to date")
        return 0
    if args.profile:
        print(render_profile(args.profile).text(), end="")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
