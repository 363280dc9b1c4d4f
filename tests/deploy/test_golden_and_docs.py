"""Committed artifacts generated from the chart stay in step with it: the golden renders of
each profile (helm/golden/) and the values table of the chart README."""

from __future__ import annotations

import chart_docs
from chart_render import GOLDEN_PROFILES, golden_path, stale_golden


def test_golden_renders_are_committed_and_up_to_date() -> None:
    missing = [p for p in GOLDEN_PROFILES if not golden_path(p).exists()]
    assert not missing, f"missing golden renders {missing}: run `make charts-golden`"
    stale = stale_golden()
    assert not stale, (
        "golden renders are stale; run `make charts-golden` and review:\n"
        + "\n".join(stale.values())[:6000]
    )


def test_chart_readme_values_table_matches_schema_and_values() -> None:
    assert chart_docs.README.read_text() == chart_docs.rendered_readme(), "run `make charts-docs`"


def test_every_default_value_is_documented_in_the_schema() -> None:
    documented = {row[0] for row in chart_docs.rows(*_schema_and_values())}
    undocumented = [
        key
        for key in _leaf_keys(_schema_and_values()[1])
        if not any(key == d or key.startswith(d + ".") for d in documented)
    ]
    assert not undocumented, undocumented


def _schema_and_values():
    import json

    import yaml

    schema = json.loads((chart_docs.CHART / "values.schema.json").read_text())
    return schema, yaml.safe_load((chart_docs.CHART / "values.yaml").read_text())


def _leaf_keys(values, prefix=""):
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"
