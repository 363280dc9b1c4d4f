"""The chart under chart-testing's published lint rules (`ct lint`): Chart.yaml valid against its
Chart.yaml schema (yamale) and Chart.yaml and every values file clean under its yamllint
configuration, both copied unchanged from helm/chart-testing (chart-testing/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yamale
from chart_render import CHART
from yamllint import config, linter

RULES = Path(__file__).with_name("chart-testing")
LINTED = [CHART / "Chart.yaml", *sorted(CHART.glob("values*.yaml"))]


def yamllint_problems(text: str, path: Path) -> list[str]:
    conf = config.YamlLintConfig(file=str(RULES / "lintconf.yaml"))
    return [
        f"{path.name}:{p.line}:{p.column} {p.level} {p.desc} ({p.rule})"
        for p in linter.run(text, conf, str(path))
    ]


def test_every_values_file_is_linted() -> None:
    assert {p.name for p in LINTED} >= {
        "Chart.yaml",
        "values.yaml",
        "values-dev.yaml",
        "values-dev-databases.yaml",
        "values-ci.yaml",
        "values-prod.yaml",
    }


@pytest.mark.parametrize("path", LINTED, ids=lambda p: p.name)
def test_chart_and_values_files_are_clean_under_chart_testings_yamllint_rules(path: Path) -> None:
    assert yamllint_problems(path.read_text(), path) == []


def test_chart_yaml_is_valid_under_chart_testings_chart_schema() -> None:
    schema = yamale.make_schema(str(RULES / "chart_schema.yaml"))
    yamale.validate(schema, yamale.make_data(str(CHART / "Chart.yaml")))


def test_the_rules_catch_what_ct_lint_would_refuse(tmp_path: Path) -> None:
    # A flow sequence continued at the key's indentation, as values-dev.yaml's args once were.
    values = tmp_path / "values.yaml"
    values.write_text("api:\n  args: [a, b,\n    c]\n")
    assert [p.split(" ", 1)[1] for p in yamllint_problems(values.read_text(), values)] == [
        "error wrong indentation: expected 9 but found 4 (indentation)"
    ]
    chart = tmp_path / "Chart.yaml"
    chart.write_text("apiVersion: v2\nname: x\nversion: 1.0.0\nmaintainers: [{email: a@b.c}]\n")
    schema = yamale.make_schema(str(RULES / "chart_schema.yaml"))
    with pytest.raises(yamale.YamaleError) as refused:
        yamale.validate(schema, yamale.make_data(str(chart)))
    assert "maintainers.0.name: Required field missing" in str(refused.value)
