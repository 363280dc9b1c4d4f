"""The chart as a dependency of an umbrella chart: Helm hands it the umbrella's `global` block and,
through the dependency's condition, `enabled`; the strict values.schema.json accepts both, and
the umbrella renders exactly the objects the chart renders alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chart_render import CHART, NAMESPACE, RELEASE, profile_values, render

# What an umbrella's values typically hold besides its subcharts': shared settings under `global`.
GLOBAL = {"imageRegistry": "registry.example.com", "storageClass": "fast", "team": "platform"}


def _umbrella(directory: Path, values: dict[str, Any]) -> Path:
    """A tiny umbrella chart depending on helm/tripline (file://), with `tripline.enabled` as the
    dependency's condition; `helm dependency build` packs the chart into its charts/."""
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    chart = {
        "apiVersion": "v2",
        "name": "platform",
        "version": "1.0.0",
        "dependencies": [
            {
                "name": "tripline",
                "version": version,
                "repository": f"file://{CHART}",
                "condition": "tripline.enabled",
            }
        ],
    }
    (directory / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (directory / "values.yaml").write_text(yaml.safe_dump(values))
    helm_python.dependency_build(directory)
    assert [p.name for p in (directory / "charts").iterdir()] == [f"tripline-{version}.tgz"]
    return directory


def _documents(templates: dict[str, str]) -> list[str]:
    documents = []
    for path, text in templates.items():
        if path.endswith("NOTES.txt"):
            continue
        for chunk in text.split("\n---"):
            document = yaml.safe_load(chunk.strip().removeprefix("---"))
            if document is not None:
                documents.append(json.dumps(document, sort_keys=True))
    return sorted(documents)


def _render_umbrella(directory: Path) -> dict[str, str]:
    with helm_python.Chart.load(directory) as chart:
        return chart.render(name=RELEASE, namespace=NAMESPACE, is_install=True)


@pytest.mark.parametrize("profile", ["ci", "prod"])
def test_an_umbrella_chart_renders_the_same_objects_as_the_chart_alone(
    tmp_path: Path, profile: str
) -> None:
    values = profile_values(profile)
    umbrella = _umbrella(tmp_path, {"global": GLOBAL, "tripline": {"enabled": True, **values}})
    alone = render(values)
    templates = _render_umbrella(umbrella)
    assert all(path.startswith("platform/charts/tripline/templates/") for path in templates)
    through_umbrella = _documents(templates)
    assert through_umbrella and through_umbrella == _documents(alone.templates)


def test_the_umbrella_condition_leaves_the_chart_out(tmp_path: Path) -> None:
    values = {"global": GLOBAL, "tripline": {"enabled": False, **profile_values("ci")}}
    assert _documents(_render_umbrella(_umbrella(tmp_path, values))) == []


def test_the_schema_still_refuses_unknown_values_through_an_umbrella(tmp_path: Path) -> None:
    values = {
        "global": GLOBAL,
        "tripline": {"enabled": True, "replicas": 3, **profile_values("ci")},
    }
    with pytest.raises(helm_python.HelmError) as refused:
        _render_umbrella(_umbrella(tmp_path, values))
    assert "replicas" in str(refused.value)
