"""The Limits section of docs/operations.md states each limit's setting and default; every
number there is the code's own, so the section cannot drift from the product."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from tripline_admin.settings import AdminSettings
from tripline_api.limits import PASSWORD_CHANGE, PASSWORD_RESET, SIGNUP, SIGNUP_ALL
from tripline_api.settings import ApiSettings
from tripline_common.security import LOGIN_POLICIES
from tripline_ingest.settings import IngestSettings
from tripline_ingest.telemetry.limits import DEVICE_UPLOADS, FAILED_KEY_LOOKUPS

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
SETTINGS = (ApiSettings, IngestSettings, AdminSettings)
POLICIES = (*LOGIN_POLICIES, SIGNUP, SIGNUP_ALL, PASSWORD_RESET, PASSWORD_CHANGE)
INGEST_POLICIES = (DEVICE_UPLOADS, FAILED_KEY_LOOKUPS)


def limits_section() -> str:
    text = DOC.read_text()
    start = text.index("\n## Limits\n")
    return text[start : text.index("\n## ", start + 1)]


def table_rows() -> list[tuple[str, str, int]]:
    """(policy cell, setting, default) of every table row naming a setting or constant."""
    rows = []
    for line in limits_section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"`[\w.]+`", cells[-2]) or cells[-1] == "default":
            continue
        rows.append((cells[1] if len(cells) == 5 else "", cells[-2].strip("`"), int(cells[-1])))
    return rows


def default_of(setting: str) -> int:
    if "." in setting:
        module, name = setting.rsplit(".", 1)
        return int(getattr(importlib.import_module(module), name))
    for settings in SETTINGS:
        field = settings.model_fields.get(setting.lower())
        if field is not None:
            return int(field.default)
    raise AssertionError(f"{setting} is no setting of the API, ingest or admin app")


def test_every_number_in_the_limits_section_is_the_default_of_its_setting() -> None:
    rows = table_rows()
    assert len(rows) >= 20
    wrong = [(setting, said, default_of(setting)) for _, setting, said in rows]
    assert [w for w in wrong if w[1] != w[2]] == []


def test_every_rate_limit_policy_is_in_the_limits_section_with_its_setting() -> None:
    rows = {(policy.strip("`"), setting) for policy, setting, _ in table_rows() if policy}
    for policy in (*POLICIES, *INGEST_POLICIES):
        assert (policy.name, policy.limit_setting.upper()) in rows, policy
        windows = {setting for _, setting, _ in table_rows()}
        assert policy.window_setting.upper() in windows, policy


def test_the_readme_links_to_the_limits_section() -> None:
    readme = (DOC.parents[1] / "README.md").read_text()
    assert "docs/operations.md#limits" in readme
