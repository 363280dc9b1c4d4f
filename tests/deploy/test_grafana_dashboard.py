"""The Grafana dashboard (deploy/grafana/tripline-overview.json): well-formed for Grafana, built
only on the agreed metric names, and shipped by the chart as a ConfigMap for Grafana's sidecar.
That every query returns data from the real processes is tests/test_prometheus_queries.py."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from chart_render import (
    CHART,
    NEWEST_KUBERNETES,
    OLDEST_KUBERNETES,
    PROFILES,
    ROOT,
    profile_values,
    render,
)

from tests.metric_contract import CONTRACT
from tripline_common.platform.tracing import EXEMPLAR_LABEL

DASHBOARD = ROOT / "deploy" / "grafana" / "tripline-overview.json"
CHART_COPY = CHART / "files" / "grafana" / "tripline-overview.json"
CONFIGMAP = "tripline-dashboard"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")
# The histograms whose observations carry a trace ID as their exemplar (docs/operations.md).
WITH_EXEMPLARS = re.compile(r"\btripline_\w+_(http_request|job)_duration_seconds_bucket\b")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and the panels of collapsed rows included."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def test_the_chart_ships_an_identical_copy_of_the_dashboard() -> None:
    assert CHART_COPY.read_bytes() == DASHBOARD.read_bytes(), (
        f"cp {DASHBOARD.relative_to(ROOT)} {CHART_COPY.relative_to(ROOT)}"
    )


def test_every_panel_is_titled_described_and_reads_the_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] == "tripline-overview"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    problems = []
    ids = [panel["id"] for panel in panels(board)]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids repeat: {sorted(ids)}")
    for panel in panels(board):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if not panel.get("title") or not panel.get("description"):
            problems.append(f"{where}: needs a title and a description")
        if panel["type"] == "row":
            continue
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"{where}: datasource is {panel.get('datasource')}")
        if not panel.get("targets"):
            problems.append(f"{where}: no query")
        for target in panel.get("targets", []):
            if target.get("datasource") != DATASOURCE or not target.get("expr", "").strip():
                problems.append(f"{where} {target.get('refId')}: needs ${{datasource}} and expr")
        if len({t["refId"] for t in panel["targets"]}) != len(panel["targets"]):
            problems.append(f"{where}: refIds repeat")
    assert not problems, "\n".join(problems)


def test_panels_do_not_overlap_on_the_grid() -> None:
    taken: dict[tuple[int, int], str] = {}
    overlaps = []
    for panel in panels(dashboard()):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in taken:
                    overlaps.append(f"{panel['title']!r} over {taken[(x, y)]!r}")
                taken[(x, y)] = panel["title"]
    assert not overlaps, sorted(set(overlaps))


def test_every_metric_the_dashboard_reads_is_in_the_contract() -> None:
    board = dashboard()
    texts = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    texts += [json.dumps(v.get("query")) for v in board["templating"]["list"]]
    used = {
        HISTOGRAM_SERIES.sub("", name) if HISTOGRAM_SERIES.sub("", name) in CONTRACT else name
        for text in texts
        for name in re.findall(r"\btripline_[a-z0-9_]+", text)
    }
    assert used, "no tripline metric found"
    assert not used - CONTRACT, sorted(used - CONTRACT)


def test_the_request_and_job_latency_panels_and_no_others_show_exemplars() -> None:
    problems = []
    for panel in panels(dashboard()):
        targets = panel.get("targets", [])
        shown = [t for t in targets if t.get("exemplar")]
        where = f"panel {panel['id']} {panel['title']!r}"
        if any(WITH_EXEMPLARS.search(t["expr"]) for t in targets):
            # One target per panel: each asks for the same exemplars, which would repeat.
            if len(shown) != 1:
                problems.append(f"{where}: {len(shown)} targets show exemplars, not 1")
            if "exemplars" not in panel["description"]:
                problems.append(f"{where}: the description does not explain the dots")
        problems += [
            f"{where} {t['refId']}: exemplars of a series that has none"
            for t in shown
            if not WITH_EXEMPLARS.search(t["expr"]) or t["exemplar"] is not True
        ]
    assert not problems, "\n".join(problems)


def test_the_documented_data_source_links_exemplars_by_the_label_the_processes_write() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    [block] = [
        b for b in re.findall(r"```yaml\n(.*?)```", operations, re.S) if "exemplarTraceId" in b
    ]
    [source] = yaml.safe_load(block)["datasources"]
    assert source["type"] == "prometheus"
    [link] = source["jsonData"]["exemplarTraceIdDestinations"]
    assert link["name"] == EXEMPLAR_LABEL == "trace_id"


def test_the_dashboard_configmap_is_opt_in() -> None:
    for profile in (p for p in PROFILES if p not in ("default", "dev-databases")):
        names = {cm["metadata"]["name"] for cm in render(profile_values(profile)).kind("ConfigMap")}
        assert CONFIGMAP not in names, profile


def test_the_configmap_carries_the_sidecar_label_and_the_dashboard() -> None:
    values = profile_values("ci", {"metrics": {"grafanaDashboard": {"enabled": True}}})
    configmap = render(values).get("ConfigMap", CONFIGMAP)
    assert configmap["metadata"]["namespace"] == "tripline"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in configmap["metadata"]
    assert list(configmap["data"]) == ["tripline-overview.json"]
    assert json.loads(configmap["data"]["tripline-overview.json"]) == dashboard()


def test_label_namespace_and_annotations_are_configurable() -> None:
    settings = {
        "enabled": True,
        "namespace": "monitoring",
        "label": "example.com/dashboard",
        "labelValue": "tripline",
        "annotations": {"grafana_folder": "Tripline"},
    }
    values = profile_values("ci", {"metrics": {"grafanaDashboard": settings}})
    metadata = render(values).get("ConfigMap", CONFIGMAP)["metadata"]
    assert metadata["namespace"] == "monitoring"
    assert metadata["labels"]["example.com/dashboard"] == "tripline"
    assert "grafana_dashboard" not in metadata["labels"]
    assert metadata["annotations"] == {"grafana_folder": "Tripline"}


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_the_configmap_is_a_valid_kubernetes_object(version: str) -> None:
    values = profile_values("prod", {"metrics": {"grafanaDashboard": {"enabled": True}}})
    configmap = render(values).get("ConfigMap", CONFIGMAP)
    kubernetes_validate.validate(configmap, version, strict=True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"enabled": "yes"}, "/metrics/grafanaDashboard/enabled"),
        ({"labelValue": 1}, "/metrics/grafanaDashboard/labelValue"),
        ({"label": "not a label"}, "/metrics/grafanaDashboard/label"),
        ({"namespace": "Monitoring"}, "/metrics/grafanaDashboard/namespace"),
        ({"folder": "Tripline"}, "additional properties 'folder'"),
    ],
)
def test_bad_dashboard_values_are_refused_by_the_schema(settings, message) -> None:
    values = profile_values("ci", {"metrics": {"grafanaDashboard": settings}})
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(values)
    assert message in str(refused.value), str(refused.value)
