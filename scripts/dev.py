"""The runner behind `make dev`: Postgres, Redis, migrations, demo data, the four apps, one log.

    uv run python scripts/dev.py

1. Reads DATABASE_URL and REDIS_URL from the environment or `.env` (the environment wins).
2. Uses those servers if they answer; otherwise starts embedded real ones (tripline_devstack)
   with their data under TRIPLINE_DEV_DATA_DIR (default `.local/dev`). Creates the database
   DATABASE_URL names (`tripline` if it names none) on whichever Postgres it got; it refuses
   the test suite's scratch databases (`tripline_test_*`).
3. Runs the migrations, then loads the demo data. If either fails, everything stops.
4. Unless SMTP_HOST is set, starts a real SMTP server on 127.0.0.1:DEV_SMTP_PORT (aiosmtpd, the
   stand-in for a mail provider) and points the worker at it: every message it receives is
   printed under `mail`, with its links (sign-up confirmation) and tokens (password reset).
   Unless the environment names a trace collector (OTEL_EXPORTER_OTLP_ENDPOINT or
   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, passed through as is) or switches tracing off
   (OTEL_SDK_DISABLED), starts a real OTLP/HTTP receiver on 127.0.0.1 (the stand-in for a
   collector), points every process at it, keeping every trace (dev only), and prints each
   finished trace as one line under `trace`: root span, duration, span count, services and
   trace ID (`dev_traces.is_shown`: every trace but a cron run that handed nothing on).
   Starts api, admin, ingest and worker, each in its own process group, and merges their
   output into one stream, each line prefixed with its process name (coloured on a terminal
   unless NO_COLOR is set).
5. Waits for every process to answer GET /readyz with 200, then prints the URLs.
   Then, unless TRIPLINE_DEV_FLEET=0 (or there is no api or ingest to drive), starts the fleet
   simulator (`tripline-fleet`, docs/fleet.md) as the demo user: DEV_FLEET_DEVICES devices
   (default 3) drive trip after trip around Berlin, so that trips move, alerts fire and
   webhooks arrive within a minute; its lines appear under `fleet`, the deliveries its webhook
   receiver got go to <data dir>/fleet-webhooks.jsonl, and the banner shows how to watch the
   alerts live with `curl -N`. If the fleet exits on its own, the rest runs on.
6. On Ctrl-C, SIGTERM or SIGHUP, stops the fleet first (it completes its trips), then sends
   SIGTERM to each process group, waits up to 15 s,
   SIGKILLs what is left, stops the embedded servers and exits 0 (press Ctrl-C twice to skip
   the wait). If a process dies on its own, it says so, stops everything and exits 1.
   Only SIGKILL of the runner itself can leave the apps running (the embedded servers still
   stop, on Linux); the next run then reports their ports as taken.

Settings (environment or `.env`):
    DATABASE_URL    default postgresql+asyncpg://postgres@127.0.0.1:5432/tripline
    REDIS_URL       default redis://127.0.0.1:6379/0
    TRIPLINE_DEV_DATA_DIR                           default <repo>/.local/dev
    TRIPLINE_DEV_FLEET  0 turns the fleet simulator off (default 1: on)
    DEV_FLEET_DEVICES   devices in the fleet, default 3
    API_PORT, ADMIN_PORT, INGEST_PORT, WORKER_PORT  default 8000, 8001, 8002, 8003
    API_OPS_PORT, ADMIN_OPS_PORT, INGEST_OPS_PORT, WORKER_OPS_PORT
                    probes and /metrics (OPS_PORT), default 9000, 9001, 9002, 9003
    DEV_SMTP_PORT   default 8025 (the stand-in mail server; unused when SMTP_HOST is set)
    PUBLIC_BASE_URL default the API's address (mailed links, the admin docs' token endpoint)
    CORS_ORIGINS    default for the API: the admin's origin, so the admin docs can log in
    OTEL_*          from the environment only (as the processes read them), not `.env`

Hooks for tests (JSON), which replace the real commands with stand-ins:
    TRIPLINE_DEV_SERVICES       [{"name": "api", "cmd": ["tripline-api"], "port": 8000,
                                  "ops_port": 9000}, ...]
    TRIPLINE_DEV_MIGRATE_CMD    ["tripline-migrate", "upgrade", "head"]
    TRIPLINE_DEV_SEED_CMD       ["python", "scripts/seed.py"]
    TRIPLINE_DEV_READY_TIMEOUT  seconds to wait for /readyz (default 60)
    TRIPLINE_DEV_FLEET_CMD      ["tripline-fleet", "--api", ...] (the runner's arguments follow)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import httpx
from dev_traces import TraceSettings, is_shown, stand_in_environment
from seed import DEMO_DEVICE_KEY, DEMO_PASSWORD  # scripts/ is this script's directory

from tripline_common.platform import TracingConfigError
from tripline_devstack import (
    DevMailServer,
    DevTraceCollector,
    ReceivedMail,
    Stack,
    TraceSummary,
    ensure_database,
    ensure_stack,
    port_is_free,
    redact_url,
)
from tripline_devstack.probes import database_name

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_DATABASE = "tripline"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/tripline"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
STOP_GRACE_SECONDS = 15.0
RUNNER = "dev"  # the name the runner's own lines carry
MAIL = "mail"  # the name the stand-in mail server's lines carry
TRACE = "trace"  # the name the stand-in collector's lines carry
FLEET = "fleet"  # the name the fleet simulator's lines carry
FLEET_STOP_SECONDS = 10.0  # the fleet's time to complete its trips before the apps stop
DEMO_EMAIL = "demo@tripline.dev"
DEMO_LOGIN = f"{DEMO_EMAIL}:{DEMO_PASSWORD}"  # the fleet's account (FLEET_LOGIN)
TEST_DATABASE_PREFIX = "tripline_test_"  # the test suite's scratch databases (conftest.py)

# What the banner shows beyond each process's base URL.
EXTRA_LINKS = {
    "api": ("API docs", "/docs"),
    "admin": ("console", "/console/"),
}


# -- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One long-running process: its name in the logs, its command, the port it serves on and
    the port of its probes and /metrics (OPS_PORT)."""

    name: str
    cmd: list[str]
    port: int
    ops_port: int


@dataclass(frozen=True)
class Config:
    """Everything the runner reads from the environment and `.env`."""

    database_url: str
    redis_url: str
    data_dir: Path
    services: list[Service]
    migrate_cmd: list[str]
    seed_cmd: list[str]
    ready_timeout: float
    smtp_port: int | None  # the stand-in mail server's port; None: SMTP_HOST is configured
    public_base_url: str | None  # None: configured (the apps read it themselves)
    api_cors_origins: str | None  # None: configured, or no admin app to allow
    traces: TraceSettings
    fleet_cmd: list[str] | None  # the fleet simulator's command; None: switched off
    fleet_devices: int

    @property
    def database(self) -> str:
        """The dev database: the one DATABASE_URL names, `tripline` if it names none."""
        return database_name(self.database_url) or DEV_DATABASE


def load_config() -> Config:
    """Settings from `.env` overlaid with the environment, with the documented defaults."""
    settings = {**read_dotenv(REPO_ROOT / ".env"), **os.environ}

    def port(name: str, default: int) -> int:
        return int(settings.get(name) or default)

    services = [
        Service("api", ["tripline-api"], port("API_PORT", 8000), port("API_OPS_PORT", 9000)),
        Service(
            "admin", ["tripline-admin"], port("ADMIN_PORT", 8001), port("ADMIN_OPS_PORT", 9001)
        ),
        Service(
            "ingest", ["tripline-ingest"], port("INGEST_PORT", 8002), port("INGEST_OPS_PORT", 9002)
        ),
        Service(
            "worker", ["tripline-worker"], port("WORKER_PORT", 8003), port("WORKER_OPS_PORT", 9003)
        ),
    ]
    if settings.get("TRIPLINE_DEV_SERVICES"):
        services = [Service(**entry) for entry in json.loads(settings["TRIPLINE_DEV_SERVICES"])]

    def command(name: str, default: list[str]) -> list[str]:
        value = settings.get(name)
        return list(json.loads(value)) if value else default

    data_dir = Path(settings.get("TRIPLINE_DEV_DATA_DIR") or REPO_ROOT / ".local" / "dev")
    ports = {service.name: service.port for service in services}
    try:
        traces = TraceSettings.read(os.environ)
    except TracingConfigError as error:
        raise SystemExit(f"make dev: {error}") from None  # every process would refuse it
    return Config(
        database_url=settings.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        redis_url=settings.get("REDIS_URL") or DEFAULT_REDIS_URL,
        data_dir=data_dir.absolute(),
        services=services,
        migrate_cmd=command("TRIPLINE_DEV_MIGRATE_CMD", ["tripline-migrate", "upgrade", "head"]),
        seed_cmd=command("TRIPLINE_DEV_SEED_CMD", [sys.executable, "scripts/seed.py"]),
        ready_timeout=float(settings.get("TRIPLINE_DEV_READY_TIMEOUT") or 60),
        smtp_port=None if settings.get("SMTP_HOST") else port("DEV_SMTP_PORT", 8025),
        # Mailed links and the admin docs' Authorize button point at the API; the admin docs
        # (another origin) may then call its token endpoint.
        public_base_url=None
        if settings.get("PUBLIC_BASE_URL")
        else f"http://127.0.0.1:{ports.get('api', 8000)}",
        api_cors_origins=None
        if settings.get("CORS_ORIGINS") or "admin" not in ports
        else f"http://127.0.0.1:{ports['admin']}",
        traces=traces,
        fleet_cmd=None
        if settings.get("TRIPLINE_DEV_FLEET", "1").strip().lower() in ("0", "false", "no", "off")
        else command("TRIPLINE_DEV_FLEET_CMD", ["tripline-fleet"]),
        fleet_devices=int(settings.get("DEV_FLEET_DEVICES") or 3),
    )


def read_dotenv(path: Path) -> dict[str, str]:
    """`KEY=value` lines of a `.env` file (comments, `export` and quotes handled); {} if absent."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw_line in path.read_text().splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if value[:1] in ("'", '"') and value[:1] in value[1:]:
            value = value[1 : value.index(value[0], 1)]
        else:
            value = value.split(" #", 1)[0].strip()  # an inline comment
        values[key.strip()] = value
    return values


# -- one readable stream of output -------------------------------------------------------------


class LogStream:
    """Writes lines from many sources to stdout, each prefixed with a fixed-width source name."""

    COLOURS = ("36", "35", "33", "32", "34", "91", "96", "95")  # ANSI foreground colours

    def __init__(self, sources: list[str]) -> None:
        self._width = max(len(source) for source in sources)
        self._colour = {s: self.COLOURS[i % len(self.COLOURS)] for i, s in enumerate(sources)}
        self._colour[RUNNER] = "1"  # bold: the runner's own lines stand out
        self.coloured = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self._lock = threading.Lock()
        self._closed = False

    def write(self, source: str, text: str) -> None:
        """Write `text` (one or more lines) under `source`'s prefix."""
        prefix = f"{source:<{self._width}} │"
        if self.coloured:
            prefix = f"\033[{self._colour.get(source, '0')}m{prefix}\033[0m"
        with self._lock:
            if self._closed:
                return
            try:
                for line in text.splitlines() or [""]:
                    sys.stdout.write(f"{prefix} {line}\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                # Whoever read our output has gone (`make dev | head`): carry on without it,
                # so that shutting down is never cut short by a failed write (the dup2 spares
                # us Python's own complaint when it flushes stdout at exit).
                self._closed = True
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def follow(self, source: str, pipe: IO[bytes]) -> threading.Thread:
        """Copy `pipe` to the stream line by line, in a background thread, until it closes."""

        def copy() -> None:
            with pipe:
                for raw in iter(pipe.readline, b""):
                    self.write(source, raw.decode(errors="replace").rstrip("\r\n"))

        thread = threading.Thread(target=copy, name=f"output-{source}", daemon=True)
        thread.start()
        return thread

    def say(self, text: str) -> None:
        """A line from the runner itself."""
        self.write(RUNNER, text)


# -- child processes ---------------------------------------------------------------------------


class Child:
    """A command in its own process group, its stdout and stderr merged into the stream."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], output: LogStream) -> None:
        self.name = name
        self.process = subprocess.Popen(  # noqa: S603 - commands from this file or the test hooks
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own group: Ctrl-C in the terminal reaches only the runner, which then stops
            # the processes in order, and one signal reaches everything a process spawned.
            process_group=0,
        )
        assert self.process.stdout is not None
        self._output = output.follow(name, self.process.stdout)

    def exit_code(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self.process.poll()

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the process and everything in its group."""
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(self.process.pid, sig)

    def finish(self) -> None:
        """Wait for the last of its output to reach the stream."""
        self._output.join(timeout=2)


def stop_children(
    children: list[Child],
    output: LogStream,
    stop: StopRequest,
    grace: float = STOP_GRACE_SECONDS,
) -> None:
    """SIGTERM every process group, wait up to `grace` seconds, then SIGKILL what is left."""
    running = [child for child in children if child.exit_code() is None]
    for child in running:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(child.exit_code() is None for child in running):
        if time.monotonic() > deadline or stop.hurry:
            break
        time.sleep(0.1)
    for child in running:
        if child.exit_code() is None:
            output.say(f"{child.name} did not stop in time; killing it")
            child.signal_group(signal.SIGKILL)
            child.process.wait()
    for child in children:
        child.signal_group(signal.SIGKILL)  # anything a process started and left behind
        child.finish()


class LibraryWarnings(logging.Handler):
    """Shows tripline_devstack's warnings (a permission granted, a leftover stopped) in the log."""

    def __init__(self, output: LogStream) -> None:
        super().__init__(level=logging.WARNING)
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        self._output.say(record.getMessage())


class StopRequest:
    """Records a stop signal; the work loops check it. A second signal means "do not wait"."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal was closed

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.hurry = False
        self._event = threading.Event()

    def install(self) -> None:
        """Handle the stop signals from now on."""
        for stop_signal in self.SIGNALS:
            signal.signal(stop_signal, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self._event.is_set():
            self.hurry = True
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, returning early (True) when a stop signal arrives."""
        return self._event.wait(seconds)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Runner:
    """One `make dev` session: what it started, so that all of it is stopped at the end."""

    config: Config
    output: LogStream
    stop: StopRequest
    stack: Stack | None = None
    mail: DevMailServer | None = None
    collector: DevTraceCollector | None = None
    children: list[Child] = field(default_factory=list)  # everything started, to stop it all
    services: list[Child] = field(default_factory=list)  # the long-running ones, to watch them
    fleet: Child | None = None  # the fleet simulator, watched but not vital

    def run(self) -> int:
        """Start everything, run until stopped, stop everything; the process exit code."""
        try:
            return self._run()
        finally:
            self.output.say("stopping")
            if self.fleet is not None:  # first, so that it completes its trips while the API runs
                stop_children([self.fleet], self.output, self.stop, FLEET_STOP_SECONDS)
            stop_children(self.children, self.output, self.stop)
            if self.mail is not None:
                self.mail.stop()
            if self.collector is not None:
                self.collector.stop()
            if self.stack is not None:
                self.stack.stop()
            self.output.say("stopped")

    def _run(self) -> int:
        say = self.output.say
        busy = [
            (service, port, variable)
            for service in self.config.services
            for port, variable in (
                (service.port, f"{service.name.upper()}_PORT"),
                (service.ops_port, f"{service.name.upper()}_OPS_PORT"),
            )
            if not port_is_free(port)
        ]
        if self.config.smtp_port is not None and not port_is_free(self.config.smtp_port):
            say(f"port {self.config.smtp_port} for the mail stand-in is in use (set DEV_SMTP_PORT)")
            return 1
        if busy:
            for service, port, variable in busy:
                say(
                    f"port {port} for {service.name} is already in use "
                    f"(another `make dev` still running? set {variable} to move it)"
                )
            return 1

        try:
            self.stack = ensure_stack(
                self.config.database_url, self.config.redis_url, self.config.data_dir, log=say
            )
            database = self.config.database
            if database.startswith(TEST_DATABASE_PREFIX):
                say(
                    f"DATABASE_URL names {database!r}, a test suite's scratch database: "
                    "name another"
                )
                return 1
            database_url = with_database(self.stack.postgres_url, database)
            if database_url != self.stack.postgres_url:
                say(f"dev uses the {database!r} database (tests keep to their own test_*)")
            ensure_database(database_url, database)
        except Exception as error:
            say(f"could not get Postgres and Redis ready: {error}")
            return 1
        if self.stop.requested:
            return 0

        env = child_environment(database_url, self.stack.redis_url)
        if self.config.public_base_url is not None:
            env["PUBLIC_BASE_URL"] = self.config.public_base_url
        if self.config.smtp_port is not None:
            self.mail = DevMailServer(self.config.smtp_port, on_message=self._show_mail)
            self.mail.start()
            env |= {
                "SMTP_HOST": self.mail.host,
                "SMTP_PORT": str(self.mail.port),
                "SMTP_STARTTLS": "false",
            }
        if self.config.traces.runs_collector:
            # Summarised traces are dropped: a session left running for days holds only the
            # traces not yet finished.
            self.collector = DevTraceCollector(on_trace=self._show_trace, keep_summarised=False)
            self.collector.start()
            env |= stand_in_environment(self.collector.endpoint, env)
        for step, cmd in (("migrate", self.config.migrate_cmd), ("seed", self.config.seed_cmd)):
            code = self._run_step(step, cmd, env)
            if self.stop.requested:
                return 0
            if code != 0:
                say(f"{step} failed (exit code {code}): stopping")
                return 1

        for service in self.config.services:
            own = {"PORT": str(service.port), "OPS_PORT": str(service.ops_port)}
            if service.name == "api" and self.config.api_cors_origins is not None:
                own["CORS_ORIGINS"] = self.config.api_cors_origins
            child = self._start(service.name, service.cmd, {**env, **own})
            if child is None:
                return 1
            self.services.append(child)
        problem = self._wait_until_ready()
        if self.stop.requested:
            return 0
        if problem:
            say(f"not started: {problem}")
            return 1

        traces = self.config.traces.describe(
            self.collector.endpoint if self.collector is not None else None
        )
        fleet = fleet_command(self.config)
        print_banner(
            self.output,
            self.config.services,
            self.stack,
            database_url,
            traces,
            self.mail,
            fleet=self.config.fleet_devices if fleet else None,
            fleet_log=self.fleet_log,
        )
        if fleet:
            self.output.say(f"fleet: {' '.join(fleet)}")
            self.fleet = self._start(FLEET, fleet, {**env, "FLEET_LOGIN": DEMO_LOGIN})
        problem = self._supervise()
        if problem:
            say(f"{problem}: stopping everything")
            return 1
        say(f"{self.stop.signal_name} received")
        return 0

    def _show_mail(self, mail: ReceivedMail) -> None:
        """Print a message the stand-in received: whom, what, and what to click or paste."""
        lines = [f"to {', '.join(mail.recipients)}: {mail.subject}"]
        lines += [f"  link: {link}" for link in mail.links]
        lines += [f"  token: {token}" for token in mail.tokens]
        self.output.write(MAIL, "\n".join(lines))

    def _show_trace(self, summary: TraceSummary) -> None:
        """Print a finished trace as one line, unless it is a cron run that did nothing."""
        if is_shown(summary):
            self.output.write(TRACE, summary.line())

    def _start(self, name: str, cmd: list[str], env: dict[str, str]) -> Child | None:
        try:
            child = Child(name, cmd, env, self.output)
        except OSError as error:
            self.output.say(f"cannot start {name} ({' '.join(cmd)}): {error}")
            return None
        self.children.append(child)
        return child

    def _run_step(self, name: str, cmd: list[str], env: dict[str, str]) -> int:
        """Run a one-off command to the end (or until a stop signal); its exit code."""
        self.output.say(f"{name}: {' '.join(cmd)}")
        child = self._start(name, cmd, env)
        if child is None:
            return 127
        while child.exit_code() is None:
            if self.stop.wait(0.1):
                return -1  # stop_children() ends it with the rest
        child.finish()
        return child.process.returncode

    def _wait_until_ready(self) -> str | None:
        """Poll each service's /readyz until all answer 200; what went wrong otherwise."""
        pending = {service.name: service for service in self.config.services}
        children = {child.name: child for child in self.services}
        last_answer: dict[str, str] = {}
        deadline = time.monotonic() + self.config.ready_timeout
        # trust_env=False: a proxy from HTTP_PROXY must never stand between us and 127.0.0.1.
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while pending:
                for name, service in list(pending.items()):
                    code = children[name].exit_code()
                    if code is not None:
                        return f"{name} exited with code {code} before it was ready"
                    try:
                        response = client.get(f"http://127.0.0.1:{service.ops_port}/readyz")
                    except httpx.HTTPError as error:
                        last_answer[name] = type(error).__name__
                        continue
                    if response.status_code == 200:
                        del pending[name]
                        self.output.say(f"{name} is ready")
                    else:
                        last_answer[name] = f"HTTP {response.status_code}"
                if not pending:
                    return None
                if time.monotonic() > deadline:
                    waiting = ", ".join(f"{n} ({last_answer.get(n, 'no answer')})" for n in pending)
                    return f"not ready after {self.config.ready_timeout:.0f}s: {waiting}"
                if self.stop.wait(0.25):
                    return None
        return None

    @property
    def fleet_log(self) -> Path:
        """Where the fleet's webhook receiver writes each delivery it got."""
        return self.config.data_dir / "fleet-webhooks.jsonl"

    def _supervise(self) -> str | None:
        """Block until a stop signal (None) or until a process ends on its own (which one).
        The fleet may end (its report says why): the system runs on without it."""
        while not self.stop.wait(0.25):
            if self.fleet is not None and self.fleet.exit_code() is not None:
                self.output.say(
                    f"the fleet exited with code {self.fleet.exit_code()}; the rest runs on"
                )
                self.fleet = None
            for child in self.services:
                code = child.exit_code()
                if code is not None:
                    return f"{child.name} exited unexpectedly with code {code}"
        return None


def child_environment(database_url: str, redis_url: str) -> dict[str, str]:
    """Our environment plus what every process needs; the venv's scripts come first on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ENVIRONMENT": "dev",
        "PYTHONUNBUFFERED": "1",  # lines appear as they are written, not when a buffer fills
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
    }


def fleet_command(config: Config) -> list[str] | None:
    """The fleet simulator's command line, driving against this session's api and ingest (as
    the demo user: FLEET_LOGIN, in its environment, never on a command line); None when
    switched off or when either app is not among the services."""
    ports = {service.name: service.port for service in config.services}
    if config.fleet_cmd is None or "api" not in ports or "ingest" not in ports:
        return None
    return [
        *config.fleet_cmd,
        *("--api", f"http://127.0.0.1:{ports['api']}"),
        *("--ingest", f"http://127.0.0.1:{ports['ingest']}"),
        *("--devices", str(config.fleet_devices), "--trips", "0"),
        *("--webhook-log", str(config.data_dir / "fleet-webhooks.jsonl")),
    ]


def with_database(url: str, database: str) -> str:
    """`url` pointing at `database` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def print_banner(
    output: LogStream,
    services: list[Service],
    stack: Stack,
    database_url: str,
    traces: str,
    mail: DevMailServer | None = None,
    fleet: int | None = None,
    fleet_log: Path | None = None,
) -> None:
    """The URLs of everything that runs, where Postgres and Redis came from, where traces go,
    the fleet and how to watch its alerts, and how to stop."""
    lines = ["", "Tripline is running"]
    for service in services:
        base = f"http://127.0.0.1:{service.port}"
        line = f"  {service.name:<9} {base:<24}"
        if service.name in EXTRA_LINKS:
            label, path = EXTRA_LINKS[service.name]
            line += f" {label}: {base}{path}"
        line += f" metrics: http://127.0.0.1:{service.ops_port}/metrics"
        lines.append(line.rstrip())
    postgres = f"embedded, data in {stack.postgres.data_dir}" if stack.postgres else "configured"
    redis = "embedded, empty at each start" if stack.redis else "configured"
    lines.append(f"  {'postgres':<9} {redact_url(database_url)}  ({postgres})")
    lines.append(f"  {'redis':<9} {redact_url(stack.redis_url)}  ({redis})")
    if mail is not None:
        where = f"smtp://{mail.host}:{mail.port}"
        lines.append(f"  {'mail':<9} {where}  (stand-in: each message's link is printed here)")
    lines.append(f"  {'traces':<9} {traces}")
    if fleet is None:
        lines.append(f"  {'fleet':<9} off")
    else:
        lines.append(
            f"  {'fleet':<9} {fleet} devices driving around Berlin as {DEMO_EMAIL} "
            "(TRIPLINE_DEV_FLEET=0 turns it off)"
        )
        lines.append(f"  {'webhooks':<9} the fleet's receiver logs each delivery to {fleet_log}")
    lines += [
        "",
        f"  demo users   demo@, operator@, admin@tripline.dev  password: {DEMO_PASSWORD}",
        f"  demo device  X-Device-Key: {DEMO_DEVICE_KEY}",
    ]
    api = next((service for service in services if service.name == "api"), None)
    if api is not None:
        base = f"http://127.0.0.1:{api.port}"
        lines += [
            "",
            f"  watch {DEMO_EMAIL}'s alerts live (a token from the API's login, 15 min):",
            f"    TOKEN=$(curl -s {base}/v1/auth/token -d username={DEMO_EMAIL} \\",
            f"      -d password={DEMO_PASSWORD} | python3 -c "
            "'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
            f'    curl -N -H "Authorization: Bearer $TOKEN" {base}/v1/alerts/stream',
        ]
    lines += [
        "",
        "Ctrl-C to stop",
        "",
    ]
    output.say("\n".join(lines))


def main() -> int:
    """Entry point: the exit code of the whole session."""
    config = load_config()
    sources = [
        RUNNER,
        "migrate",
        "seed",
        MAIL,
        TRACE,
        FLEET,
        *(service.name for service in config.services),
    ]
    output = LogStream(sources)
    logging.getLogger("tripline_devstack").addHandler(LibraryWarnings(output))
    stop = StopRequest()
    stop.install()  # before anything starts, so that a Ctrl-C at any point cleans up
    return Runner(config, output, stop).run()


if __name__ == "__main__":
    sys.exit(main())
