"""CI runs `make lint` (ruff, and mypy strict on every package and scripts/) before the tests."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.startswith("make ")]


def test_ci_runs_lint_before_the_tests_and_stops_on_a_failure() -> None:
    script = (ROOT / ".ci/run").read_text()
    assert "set -euo pipefail" in script  # a failing `make lint` ends the run
    assert _commands(ROOT / ".ci/run") == ["make lint", "make test"]


def test_mypy_checks_every_package_and_the_scripts_strictly_in_one_run() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert "overrides" not in config  # one configuration, strict everywhere
    packages = sorted(
        str(src.relative_to(ROOT))
        for src in ROOT.glob("*/*/src")
        if src.parent.parent.name in {"libs", "services"}
    )
    assert packages, "no package found"
    assert sorted(config["files"]) == sorted([*packages, "scripts"])
    lint = (ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    # No paths on the command line: mypy checks the configured `files`.
    assert "run --frozen mypy\n" in lint + "\n"
