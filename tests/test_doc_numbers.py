"""The numbers the documentation states about the API are the code's, so the docs cannot drift.

Three checks, all driven by data:

1. Wherever a page names a setting with a value, `` `NAME` (30 s) ``, `` `NAME` 3 s `` or a
   table row `` | `NAME` | 30 | ``, the value is that setting's default (every page: README and
   docs/*.md).
2. `CLAIMS`: each other number or rule of the sections listed there, a pattern in the section
   and where its truth lives (a settings default, a module constant, a computation on them).
   A row whose pattern no longer matches fails too: the sentence changed, so must its row.
3. Coverage: in the sections of `CLAIMS` (and the descriptions of the public OpenAPI document),
   every quantity with a unit (30 s, 8 h, 1 MiB, 20%) is inside a span that check 1 or 2
   matched, so a new number without a check fails here.

Not here: the "Limits" section (rate limits, body sizes) and README's real-time section, each
checked by the test written with it.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tripline_admin.settings import AdminSettings
from tripline_api.settings import ApiSettings
from tripline_common.platform import CommonSettings
from tripline_ingest.settings import IngestSettings
from tripline_worker.settings import WorkerServiceSettings

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
OPENAPI_DOCUMENTS = ("api", "ingest", "admin")
SETTINGS = (CommonSettings, ApiSettings, IngestSettings, AdminSettings, WorkerServiceSettings)

# --- quantities -----------------------------------------------------------------------------

_UNITS = {
    "ms": 0.001, "s": 1, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hour": 3600,
    "hours": 3600, "day": 86_400, "days": 86_400, "KiB": 1024, "MiB": 1024**2, "%": 0.01,
}  # fmt: skip
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
# A quantity as the docs write it: a number, a space, a unit ("30 s", "8 h", "1 MiB"), or "20%".
QUANTITY = re.compile(
    rf"(?<![\w.,])({_NUMBER})(?:\s(minutes?|min|ms|s|hours?|h|days?|KiB|MiB)|(%))(?![\w-])"
)


def quantity(text: str) -> float | None:
    """The value of a leading number with an optional unit, in seconds, bytes or a fraction."""
    match = re.match(rf"\s*({_NUMBER})(?:\s?(minutes?|min|ms|s|hours?|h|days?|KiB|MiB|%))?", text)
    if match is None:
        return None
    number = float(match.group(1).replace(",", ""))
    return number * _UNITS[match.group(2)] if match.group(2) else number


def stated_value(text: str) -> tuple[float, bool] | None:
    """A setting's value as a page states it (`30 s`, `300`, `10 s by default`, `30 s; 0
    disables`): the quantity and whether it has a unit; None for prose that starts with a number
    (`404 on the routed port`)."""
    match = re.match(
        rf"\s*({_NUMBER})(\s?(?:minutes?|min|ms|s|hours?|h|days?|KiB|MiB|%))?(?P<rest>.*)",
        text,
        re.S,
    )
    if match is None:
        return None
    rest = match.group("rest").strip()
    if rest and rest[0] not in ",;(/" and not rest.startswith("by default"):
        return None
    value = quantity(text)
    assert value is not None
    return value, match.group(2) is not None


def _in_base_units(name: str, value: float) -> float:
    """A setting's value in seconds or bytes, read from its name's suffix."""
    if name.endswith("_MS"):
        return value / 1000
    if name.endswith("_DAYS"):
        return value * 86_400
    return value


def setting(name: str, *, with_unit: bool = True) -> set[float]:
    """The defaults of the environment variable `name` (several when services differ: PORT),
    in base units (`with_unit`) or as written in the environment."""
    found = {
        float(field.default)
        for cls in SETTINGS
        for field_name, field in cls.model_fields.items()
        if field_name.upper() == name and isinstance(field.default, int | float)
    }
    found |= DEV_PORTS.get(name, set())
    return {_in_base_units(name, value) for value in found} if with_unit else found


# `make dev` runs each process on a port of its own (scripts/dev.py), which the pages list too.
DEV_PORTS = {
    name: {
        float(port)
        for port in re.findall(
            rf'port\("\w+_{name}", (\d+)\)', (ROOT / "scripts/dev.py").read_text()
        )
    }
    for name in ("PORT", "OPS_PORT")
}


@cache
def setting_names() -> frozenset[str]:
    return frozenset(name.upper() for cls in SETTINGS for name in cls.model_fields)


def constant(module: str, name: str) -> Callable[[], float]:
    return lambda: float(getattr(importlib.import_module(module), name))


def default(cls: type[Any], field: str, unit: float = 1) -> Callable[[], float]:
    """A settings default, scaled (e.g. a factor given as a percentage: unit=0.01)."""
    return lambda: float(cls.model_fields[field].default) / unit


# --- pages and sections ---------------------------------------------------------------------


def section(page: str, heading: str) -> str:
    """The text under `heading` of a Markdown page, up to the next heading of its level or
    above, with each run of white space made one space; "" when there is no such heading."""
    lines = (ROOT / page).read_text().splitlines(keepends=True)
    level = len(heading) - len(heading.lstrip("#"))
    body: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("#"):
            line_level = len(line) - len(line.lstrip("#"))
            if line.strip() == heading:
                inside = True
                continue
            if inside and line_level <= level:
                break
        if inside:
            body.append(line)
    return " ".join("".join(body).split())


@cache
def openapi_text(document: str) -> str:
    """Every description of a committed OpenAPI document (equal to the app's own:
    tests/test_openapi_snapshot.py), each once, one per line."""
    found: dict[str, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "description" and isinstance(value, str):
                    found[" ".join(value.split())] = None
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads((ROOT / "docs/openapi" / f"{document}.json").read_text()))
    return "\n".join(found)


# --- 1. a setting named with a value ---------------------------------------------------------

# `NAME` (value, `NAME` (default value, `NAME`, value, `NAME` value, | `NAME` | value |, and
# | `A` / `B` | x / y |
_NAMED = re.compile(r"`([A-Z][A-Z0-9_]+)`(?: \((?:default )?|, | (?=\d)|\s*\|\s*)([^)|`\n]*)")
_NAMED_PAIR = re.compile(r"\| `([A-Z][A-Z0-9_]+)` / `([A-Z][A-Z0-9_]+)` \| ([^|/]+) / ([^|]+)\|")


@dataclass(frozen=True)
class Named:
    page: str
    name: str
    stated: str
    span: tuple[int, int]


def named_settings(page: str, text: str) -> Iterator[Named]:
    pairs = [match.span() for match in _NAMED_PAIR.finditer(text)]
    for match in _NAMED_PAIR.finditer(text):
        for name_group, value_group in ((1, 3), (2, 4)):
            if stated_value(match.group(value_group)) is not None:
                yield Named(page, match.group(name_group), match.group(value_group), match.span())
    for match in _NAMED.finditer(text):
        inside_a_pair = any(start <= match.start() < end for start, end in pairs)
        if (
            match.group(1) in setting_names()
            and not inside_a_pair
            and stated_value(match.group(2)) is not None
        ):
            yield Named(page, match.group(1), match.group(2), match.span())


def _texts() -> dict[str, str]:
    """Every page, and the descriptions of each OpenAPI document."""
    texts = {page: (ROOT / page).read_text() for page in PAGES}
    texts |= {f"openapi/{app}": openapi_text(app) for app in OPENAPI_DOCUMENTS}
    return texts


def _all_named() -> list[Named]:
    return [named for page, text in _texts().items() for named in named_settings(page, text)]


@pytest.mark.parametrize(
    "named", _all_named(), ids=lambda n: f"{n.page}:{n.name}={n.stated.strip()[:20]}"
)
def test_a_setting_named_with_a_value_states_its_default(named: Named) -> None:
    stated = stated_value(named.stated)
    assert stated is not None
    value, with_unit = stated
    defaults = setting(named.name, with_unit=with_unit)
    assert value in defaults, (
        f"{named.page} says {named.name} is {named.stated.strip()!r}; the default is "
        f"{sorted(defaults)}"
    )


# --- 2. the other numbers and rules ----------------------------------------------------------

OPERATIONS = "docs/operations.md"
SECURITY = "docs/security.md"


def webhook_waits() -> list[float]:
    """Seconds before each retry of a delivery (without jitter), from the worker's defaults."""
    fields = WorkerServiceSettings.model_fields
    base = fields["webhook_backoff_base_seconds"].default
    cap = fields["webhook_backoff_max_seconds"].default
    attempts = fields["webhook_max_attempts"].default
    return [min(cap, base * 2 ** (n - 1)) for n in range(1, attempts)]


def outage_defers() -> list[float]:
    from tripline_worker.outages import MAX_DEFER_SECONDS

    return [min(MAX_DEFER_SECONDS, 2**job_try) for job_try in range(1, 6)]


def jitter_bound() -> float:
    """The largest share a webhook wait moves from its nominal value, over many draws."""
    from tripline_worker.webhooks.delivery import backoff_seconds

    draws = [backoff_seconds(1, base=100.0, cap=1000.0) for _ in range(2000)]
    return float(max(abs(draw - 100.0) / 100.0 for draw in draws))


def pool_exhausted_answer() -> list[float]:
    """Status and `Retry-After` of an app whose pool stayed busy past `DB_POOL_TIMEOUT`."""
    import asyncio

    import httpx
    from fastapi import FastAPI
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    from tripline_common.web.error_handlers import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/busy")
    async def busy() -> None:
        raise PoolTimeoutError("QueuePool limit reached")

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/busy")

    response = asyncio.run(ask())
    assert response.json()["code"] == "database_busy"
    return [float(response.status_code), float(response.headers["retry-after"])]


@dataclass(frozen=True)
class Claim:
    """A sentence of `where` whose numbers (the pattern's groups, in order) are `truth()`."""

    where: tuple[str, str]
    """(page, heading), or ("openapi", <app>): every description of that app's document."""
    pattern: str
    truth: Callable[[], Any]
    compare: str = "equal"
    """`equal`, or `at_most`: the code's value never exceeds the one stated."""

    def text(self) -> str:
        page, place = self.where
        return openapi_text(place) if page == "openapi" else section(page, place)


EXPORTS = (OPERATIONS, "### Telemetry exports and slow clients")
STREAMS = (OPERATIONS, "### Alert streams (WebSocket and SSE)")
WEBHOOKS = (OPERATIONS, "### Webhooks")
JOBS = (OPERATIONS, "### Worker jobs and crons")
CONSOLE = ("README.md", "## Admin console")
THREATS = (SECURITY, "## Threat model")
LIMITS_KNOWN = (SECURITY, "## Known limits")
API_DOC = ("openapi", "api")
ADMIN_DOC = ("openapi", "admin")
SLOTS = "tripline_api.slots"

CLAIMS = (
    # Exports: pages of rows, leases of slots, a busy pool.
    Claim(
        EXPORTS,
        r"a page \((1,000) rows\)",
        constant("tripline_api.trip_files.service", "EXPORT_CHUNK_ROWS"),
    ),
    Claim(
        EXPORTS,
        r"refreshed every (20 s) while the download runs",
        constant(SLOTS, "REFRESH_SECONDS"),
    ),
    Claim(EXPORTS, r"slots free themselves within (60 s)", constant(SLOTS, "LEASE_SECONDS")),
    Claim(
        EXPORTS, r"(503) `database_busy` with `Retry-After: (1)`", lambda: pool_exhausted_answer()
    ),
    # Streams: the same leases.
    Claim(
        STREAMS,
        r"refreshed every (20 s) while the stream is\s+open",
        constant(SLOTS, "REFRESH_SECONDS"),
    ),
    Claim(STREAMS, r"freed within (60 s) if its replica crashes", constant(SLOTS, "LEASE_SECONDS")),
    # Webhooks: the signature's replay window, the retry schedule.
    Claim(
        WEBHOOKS,
        r"abs\(time\.time\(\) - int\(timestamp\)\) > (300)",
        constant("tripline_common.messaging.webhooks", "DEFAULT_TOLERANCE_SECONDS"),
    ),
    Claim(WEBHOOKS, r"±(20%) jitter", jitter_bound, compare="at_most"),
    Claim(
        WEBHOOKS,
        r"about (5 s), (10 s), (20 s) … (15 min), ~(36) min in all",
        lambda: [*webhook_waits()[:3], max(webhook_waits()), round(sum(webhook_waits()) / 60)],
    ),
    # Worker: outage retries, alert rules.
    Claim(JOBS, r"after (2), (4), (8), (16), (30 s)", outage_defers),
    Claim(
        JOBS,
        r"\(critical at (125%)\)",
        constant("tripline_worker.alerts.rules", "CRITICAL_SPEEDING_FACTOR"),
    ),
    Claim(
        JOBS,
        r"\(critical at (3)\u00d7\)",
        constant("tripline_worker.alerts.rules", "CRITICAL_CORRIDOR_FACTOR"),
    ),
    Claim(
        JOBS,
        r"a burst crossing a multiple of (300 s) is one alert",
        default(WorkerServiceSettings, "alert_window_seconds"),
    ),
    # The console's charts.
    Claim(
        CONSOLE,
        r"over the last (15 minutes), and alerts per hour over the last (24 hours), reloaded in "
        r"place every (10 s)",
        lambda: [
            constant("tripline_admin.queues.history", "WINDOW_SECONDS")(),
            constant("tripline_admin.activity.service", "ALERT_HOURS")() * 3600,
            constant("tripline_admin.console.pages.overview", "LIVE_SECONDS")(),
        ],
    ),
    # The console's session and key rotation.
    Claim(
        CONSOLE,
        r"\((8 h) at most, (30 min) idle\)",
        lambda: [
            default(AdminSettings, "console_session_ttl_seconds")(),
            default(AdminSettings, "console_idle_timeout_seconds")(),
        ],
    ),
    Claim(
        THREATS,
        r"(30 min) idle and (8 h) at most",
        lambda: [
            default(AdminSettings, "console_idle_timeout_seconds")(),
            default(AdminSettings, "console_session_ttl_seconds")(),
        ],
    ),
    Claim(
        THREATS,
        r"\((24 h) by default, (1 h), (7 days), or none",
        lambda: [
            float(seconds)
            for seconds, _ in importlib.import_module(
                "tripline_admin.console.pages.devices"
            ).GRACE_CHOICES[:3]
        ],
    ),
    Claim(
        THREATS,
        r"outside 0\u2013(7 days) nothing rotates",
        constant("tripline_admin.devices.service", "MAX_KEY_GRACE_SECONDS"),
    ),
    # Ingest, streams, exports in the threat model.
    Claim(
        THREATS,
        r"unknown key hashes \((5 s)\)",
        default(IngestSettings, "device_key_negative_ttl_seconds"),
    ),
    Claim(THREATS, r"stream-tickets`: (30 s),", default(ApiSettings, "stream_ticket_ttl_seconds")),
    Claim(THREATS, r"outlive by at most (60 s)", constant(SLOTS, "LEASE_SECONDS")),
    Claim(
        LIMITS_KNOWN,
        r"(100) failures\s+per (60 s) by default",
        lambda: [
            default(CommonSettings, "login_account_rate_limit")(),
            default(CommonSettings, "login_rate_window_seconds")(),
        ],
    ),
    Claim(
        LIMITS_KNOWN,
        r"refused for up to (5 s) after",
        default(IngestSettings, "device_key_negative_ttl_seconds"),
    ),
    # The public OpenAPI document's own words.
    Claim(
        API_DOC,
        r"updated at most every (30 s)",
        default(IngestSettings, "last_seen_write_interval_seconds"),
    ),
    Claim(
        API_DOC,
        r"refuse timestamps older than (5 minutes)",
        constant("tripline_common.messaging.webhooks", "DEFAULT_TOLERANCE_SECONDS"),
    ),
    Claim(
        API_DOC,
        r"`grace_seconds` \((24 h) by default\)",
        constant("tripline_api.webhooks.service", "DEFAULT_SECRET_GRACE_SECONDS"),
    ),
    Claim(
        API_DOC,
        r"to (604800) \((7 days)\)",
        lambda: [constant("tripline_api.webhooks.service", "MAX_SECRET_GRACE_SECONDS")()] * 2,
    ),
    Claim(
        ADMIN_DOC,
        r"`grace_seconds` \((24 h) by default\)",
        constant("tripline_admin.devices.service", "DEFAULT_KEY_GRACE_SECONDS"),
    ),
    Claim(
        ADMIN_DOC,
        r"0 \(refused at once\) to (604800) \((7 days)\)",
        lambda: [constant("tripline_admin.devices.service", "MAX_KEY_GRACE_SECONDS")()] * 2,
    ),
    Claim(
        API_DOC,
        r"it is a 409\. Kept (24 h)\.",
        constant("tripline_common.web.idempotency", "IDEMPOTENCY_TTL_SECONDS"),
    ),
)


def _stated(claim: Claim) -> list[list[float]]:
    found = []
    for match in re.finditer(claim.pattern, claim.text()):
        values = [quantity(group) for group in match.groups()]
        assert None not in values, f"{claim.pattern}: a group is not a number"
        found.append([value for value in values if value is not None])
    return found


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: f"{c.where[0]}:{c.pattern[:40]}")
def test_each_documented_number_is_the_codes(claim: Claim) -> None:
    stated = _stated(claim)
    assert stated, f"{claim.where}: no sentence matches {claim.pattern!r} any more"
    truth = claim.truth()
    expected = [float(v) for v in truth] if isinstance(truth, list) else [float(truth)]
    for values in stated:
        if claim.compare == "at_most":
            assert all(e <= v + 1e-9 for e, v in zip(expected, values, strict=True)), (
                claim.where,
                values,
                expected,
            )
        else:
            assert values == pytest.approx(expected), (claim.where, claim.pattern, expected)


# --- 3. every number of the checked sections is checked ---------------------------------------


def _covered(text: str, patterns: list[str]) -> list[tuple[int, int]]:
    spans = [named.span for named in named_settings("", text)]
    for pattern in patterns:
        spans += [match.span() for match in re.finditer(pattern, text)]
    return spans


def _places() -> list[tuple[str, str]]:
    return sorted({claim.where for claim in CLAIMS} | {("openapi", d) for d in OPENAPI_DOCUMENTS})


@pytest.mark.parametrize("where", _places(), ids=lambda w: f"{w[0]}:{w[1]}")
def test_every_quantity_of_a_checked_section_has_a_check(where: tuple[str, str]) -> None:
    claims = [claim for claim in CLAIMS if claim.where == where]
    text = Claim(where, "", lambda: None).text()
    spans = _covered(text, [claim.pattern for claim in claims])
    unchecked = [
        text[max(0, match.start() - 50) : match.end()].replace("\n", " ")
        for match in QUANTITY.finditer(text)
        if not any(start <= match.start() and match.end() <= end for start, end in spans)
    ]
    assert not unchecked, (
        f"{where}: numbers without a check (add a row to CLAIMS, or name their setting):\n"
        + "\n".join(unchecked)
    )


# --- 4. a status named with its error code ----------------------------------------------------

_STATUS_AND_CODE = re.compile(r"\b([1-5]\d\d) `([a-z][a-z0-9_]+)`")
SOURCES = ("libs/common/src", "services/api/src", "services/ingest/src", "services/admin/src")


@cache
def statuses_by_code() -> dict[str, set[int]]:
    """Each error code of the code base and the statuses it is answered with: `XError(...,
    code="c")` (the class's status, or `status_code=`), `error_response(503, "c", ...)`, and an
    error class's own `status_code, code, ... = 429, "c", ...`."""
    from tripline_common.platform import errors

    error_statuses: dict[str, int] = {
        name: int(getattr(value, "status_code"))  # noqa: B009 - a class attribute of each
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.AppError)
    }
    found: dict[str, set[int]] = {}

    def note(code: object, status: object) -> None:
        if isinstance(code, str) and isinstance(status, int):
            found.setdefault(code, set()).add(status)

    for source in SOURCES:
        for path in (ROOT / source).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                    keywords = {k.arg: k.value for k in node.keywords}
                    code = keywords.get("code")
                    if isinstance(code, ast.Constant):
                        status = keywords.get("status_code")
                        if isinstance(status, ast.Constant):
                            note(code.value, status.value)
                        elif name in error_statuses:
                            note(code.value, error_statuses[name])
                    if name == "error_response" and len(node.args) >= 2:
                        status_arg, code_arg = node.args[0], node.args[1]
                        # `"a" if condition else "b"`: both are answered with that status.
                        codes = (
                            [code_arg.body, code_arg.orelse]
                            if isinstance(code_arg, ast.IfExp)
                            else [code_arg]
                        )
                        for one in codes:
                            if isinstance(status_arg, ast.Constant) and isinstance(
                                one, ast.Constant
                            ):
                                note(one.value, status_arg.value)
                elif isinstance(node, ast.ClassDef):
                    # class XError(ForbiddenError): code = "x" (the status is the base's)
                    bases = [getattr(b, "id", "") for b in node.bases]
                    base = next((b for b in bases if b in error_statuses), None)
                    for item in node.body:
                        if (
                            base is not None
                            and isinstance(item, ast.Assign)
                            and getattr(item.targets[0], "id", None) == "code"
                            and isinstance(item.value, ast.Constant)
                        ):
                            note(item.value.value, error_statuses[base])
                elif (
                    isinstance(node, ast.Assign)
                    and isinstance(node.targets[0], ast.Tuple)
                    and isinstance(node.value, ast.Tuple)
                ):
                    names = [getattr(t, "id", None) for t in node.targets[0].elts]
                    if "status_code" in names and "code" in names:
                        values = node.value.elts
                        status = values[names.index("status_code")]
                        code = values[names.index("code")]
                        if isinstance(status, ast.Constant) and isinstance(code, ast.Constant):
                            note(code.value, status.value)
    return found


def _statuses_stated() -> list[tuple[str, int, str]]:
    return sorted(
        {
            (page, int(match.group(1)), match.group(2))
            for page, text in _texts().items()
            for match in _STATUS_AND_CODE.finditer(text)
        }
    )


@pytest.mark.parametrize("stated", _statuses_stated(), ids=lambda s: f"{s[0]}:{s[1]}-{s[2]}")
def test_a_status_named_with_its_error_code_is_the_one_the_code_answers(
    stated: tuple[str, int, str],
) -> None:
    page, status, code = stated
    answered = statuses_by_code().get(code)
    assert answered, f"{page}: no code raises `{code}`"
    assert status in answered, f"{page} says {status} `{code}`; the code answers {answered}"
