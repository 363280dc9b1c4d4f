"""The Prometheus rules (deploy/prometheus/tripline-rules.yml): valid for promtool, unit-tested
with `promtool test rules` (deploy/prometheus/tests/), one firing and one quiet case per alert,
each alert documented and linked to its own runbook section of docs/operations.md, and shipped
unchanged by the chart's PrometheusRule (only the runbook base differs, from values)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chart_render import render_profile

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "tripline-rules.yml"
CHART_RULES = ROOT / "helm" / "tripline" / "files" / "prometheus" / "tripline-rules.yml"
UNIT_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
OPERATIONS = ROOT / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/tripline/tripline/blob/main/docs/operations.md"
SEVERITIES = {"critical", "warning"}


def _promtool() -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: .ci/run installs Debian's prometheus package"
    return promtool


def _rules(path: Path = RULES) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _records() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def _unit_tests() -> list[dict[str, Any]]:
    return [case for path in UNIT_TESTS for case in yaml.safe_load(path.read_text())["tests"]]


def github_anchor(heading: str, seen: Counter[str]) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped (hyphens and
    underscores kept), spaces to hyphens, `-1`, `-2`... on repeats."""
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    suffix = f"-{seen[anchor]}" if seen[anchor] else ""
    seen[anchor] += 1
    return anchor + suffix


def _headings(markdown: str) -> list[tuple[int, str, str]]:
    """(level, text, anchor) of every heading outside fenced code blocks, in order."""
    seen: Counter[str] = Counter()
    fenced = False
    out = []
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^(#{1,6}) +(.+?) *#* *$", line)
        if match:
            text = match.group(2)
            out.append((len(match.group(1)), text, github_anchor(text, seen)))
    return out


def _alert_sections() -> dict[str, str]:
    """Heading text -> anchor of the `###` sections under `## Alerts` of docs/operations.md."""
    sections, inside = {}, False
    for level, text, anchor in _headings(OPERATIONS.read_text()):
        if level <= 2:
            inside = text == "Alerts"
        elif inside and level == 3:
            sections[text.strip("`")] = anchor
    return sections


@pytest.mark.parametrize("path", [RULES, CHART_RULES], ids=["deploy", "chart"])
def test_rules_files_pass_promtool_check(path: Path) -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_chart_ships_an_identical_copy_of_the_rules() -> None:
    assert CHART_RULES.read_bytes() == RULES.read_bytes(), (
        "run: cp deploy/prometheus/tripline-rules.yml helm/tripline/files/prometheus/"
    )


@pytest.mark.parametrize("path", UNIT_TESTS, ids=[p.stem for p in UNIT_TESTS])
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", path.name], capture_output=True, text=True, cwd=path.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_exist_and_load_the_canonical_rules() -> None:
    assert len(UNIT_TESTS) >= 2
    for path in UNIT_TESTS:
        assert yaml.safe_load(path.read_text())["rule_files"] == ["../tripline-rules.yml"], path


def test_every_alert_has_severity_summary_description_and_its_runbook_url() -> None:
    alerts = _alerts()
    assert {a["alert"] for a in alerts} >= {
        "TriplineHigh5xxRatio",
        "TriplineLatencyBudgetBurn",
        "TriplineIngestBacklogGrowing",
        "TriplineQueueOldestJobTooOld",
        "TriplineWorkerAbsent",
        "TriplineWebhookFailureRatio",
        "TriplineReadinessFlapping",
    }
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}", name


def test_every_runbook_url_anchor_is_a_heading_of_the_alerts_section() -> None:
    sections = _alert_sections()
    names = {alert["alert"] for alert in _alerts()}
    assert set(sections) == names, "one `### <AlertName>` per alert under `## Alerts`"
    for alert in _alerts():
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert sections[alert["alert"]] == anchor, alert["alert"]


def test_github_anchor_matches_githubs_rules() -> None:
    seen: Counter[str] = Counter()
    assert github_anchor("TriplineHigh5xxRatio", seen) == "triplinehigh5xxratio"
    assert github_anchor("ARQ tuning and the worker probe", seen) == (
        "arq-tuning-and-the-worker-probe"
    )
    assert github_anchor("User-visible jobs (`jobs`)", seen) == "user-visible-jobs-jobs"
    assert github_anchor("Ingest", seen) == "ingest"
    assert github_anchor("Ingest", seen) == "ingest-1"


def test_every_alert_has_a_firing_and_a_quiet_unit_test_case() -> None:
    firing, quiet = set(), set()
    for case in _unit_tests():
        for check in case.get("alert_rule_test", []):
            if check.get("exp_alerts"):
                firing.add(check["alertname"])
                for expected in check["exp_alerts"]:
                    assert {"summary", "description", "runbook_url"} <= set(
                        expected.get("exp_annotations", {})
                    ), f"{check['alertname']}: a firing case checks the annotations"
            else:
                quiet.add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - firing == set(), "alerts without a firing case"
    assert names - quiet == set(), "alerts without a case where they stay quiet"
    # And every severity of a multi-severity alert fires in some case.
    fired_severities = {
        (check["alertname"], expected["exp_labels"]["severity"])
        for case in _unit_tests()
        for check in case.get("alert_rule_test", [])
        for expected in check.get("exp_alerts") or []
    }
    assert {(a["alert"], a["labels"]["severity"]) for a in _alerts()} <= fired_severities


def test_every_recording_rule_is_checked_by_a_promql_expr_test() -> None:
    exprs = " ".join(
        check["expr"] for case in _unit_tests() for check in case.get("promql_expr_test", [])
    )
    unchecked = sorted(r for r in _records() if not re.search(rf"{re.escape(r)}\b", exprs))
    assert not unchecked, unchecked


def test_recording_rules_are_named_tripline_what_window() -> None:
    for name in _records():
        assert re.fullmatch(r"tripline:[a-z0-9_]+:[a-z0-9_]+", name), name


def test_alerts_use_recorded_signals_and_only_up_selects_on_job_or_namespace() -> None:
    records = _records()
    for rule in _rules():
        expr = rule["expr"]
        selects = re.findall(r"\b(?:job|namespace)\s*(?:=~|!~|!=|=)", expr)
        if selects:
            assert re.fullmatch(r"up\{[^}]*\}\s*==\s*0\s*", expr), rule
        if "alert" in rule and not expr.startswith(("up{", "absent(")):
            metrics = set(re.findall(r"\btripline[:_][a-zA-Z0-9_:]*", expr))
            assert metrics and metrics <= records, (
                f"{rule['alert']} reads {metrics - records}: alerts read recorded signals"
            )


def _chart_groups(**overrides: Any) -> list[dict[str, Any]]:
    values = {"metrics": {"prometheusRule": overrides}} if overrides else {}
    (rule,) = render_profile("prod", values).kind("PrometheusRule")
    return rule["spec"]["groups"]


def test_the_chart_prometheus_rule_holds_exactly_the_rules_file() -> None:
    assert _chart_groups() == yaml.safe_load(RULES.read_text())["groups"]


def test_the_runbook_base_url_is_a_value() -> None:
    base = "https://wiki.example.com/ops/tripline"
    groups = _chart_groups(runbookBaseUrl=base)
    urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r]
    assert urls and all(u.startswith(base + "#") for u in urls)
    assert {u.split("#")[1] for u in urls} == {a["alert"].lower() for a in _alerts()}
    with pytest.raises(helm_python.HelmError):
        _chart_groups(runbookBaseUrl="wiki.example.com/ops#alerts")
