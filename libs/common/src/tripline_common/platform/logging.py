"""One logging setup for every process: structlog, JSON in prod, readable console in dev."""

from __future__ import annotations

import logging
import re
import sys
import threading
from types import TracebackType
from typing import Any

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from tripline_common.platform.settings import CommonSettings
from tripline_common.platform.tracing import current_trace_ids

# Loggers of the libraries we run on, routed through structlog's formatter so that every line,
# ours or theirs, has the same shape. uvicorn.access is silenced: we log each request once, in
# our own middleware (it costs ~19% of throughput otherwise, see docs/performance.md).
_ROUTED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "arq",
    "arq.worker",
    "arq.jobs",
    "arq.connections",
    "py.warnings",
)
_QUIET_LOGGERS = ("uvicorn.access",)
# httpx logs every call's full URL at INFO, and a webhook URL is often a capability: its path
# or query string is the receiver's credential. Their warnings and errors still get through.
_WARNING_ONLY_LOGGERS = ("httpx", "httpcore")

# Library lines that repeat ours or say nothing an operator acts on, by logger and format
# string: logged at DEBUG instead of INFO, so LOG_LEVEL=DEBUG still shows them.
_DEBUG_ONLY_LINES = {
    # ARQ's lines for each job started, succeeded and retried, and its health line after each
    # change of its counters: the job's own line says what it did, under its correlation ID.
    # (ARQ's failure line, with the traceback, stays an error.)
    "arq.worker": frozenset(
        {
            "%6.2fs → %s(%s)%s",
            "%6.2fs ← %s ● %s",
            "%6.2fs ↻ %s retrying job in %0.2fs",
            "recording health: %s",
        }
    ),
    # Alembic's preamble to every migration run; "Running upgrade a -> b" stays.
    "alembic.runtime.migration": frozenset({"Context impl %s.", "Will assume %s DDL."}),
}

# Keys every line carries, even when unknown at the time (null), so log queries never miss.
_REQUIRED_KEYS = ("request_id",)


def _static_fields(settings: CommonSettings) -> Processor:
    fields = {
        "service": settings.service_name,
        "environment": settings.environment.value,
        "version": settings.version,
    }

    def add_static_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
        for key in _REQUIRED_KEYS:
            event_dict.setdefault(key, None)
        return event_dict

    return add_static_fields


def _add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """`trace_id` and `span_id` (W3C hex) of the span recording now, on lines written inside
    one (a request or a job while tracing is on): the line and its trace find each other."""
    ids = current_trace_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn adds a duplicate, ANSI-coloured copy of its message.
    event_dict.pop("color_message", None)
    return event_dict


# Query parameters that carry credentials. The libraries' lines may quote a URL with its query
# (uvicorn logs each WebSocket handshake as `"WebSocket /path?query" [accepted]`); a stream
# ticket is single-use, but no credential is written to a log, used or not.
_CREDENTIAL_PARAM = re.compile(
    r"(?i)(\b(?:access_token|refresh_token|id_token|token|ticket|api_key|apikey)=)[^&\s\"'#]+"
)


def redact_credential_params(text: str) -> str:
    """`text` with the values of credential query parameters (`ticket=`, `access_token=`, ...)
    replaced by `[redacted]`."""
    return _CREDENTIAL_PARAM.sub(r"\1[redacted]", text) if "=" in text else text


def _redact_foreign_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = redact_credential_params(event)
    return event_dict


class _ConsoleLogger(structlog.WriteLogger):
    """structlog's text writer, carrying its name for `add_logger_name` (as BytesLogger does)."""

    def __init__(self, name: str | None) -> None:
        super().__init__(sys.stderr)
        self.name = name


def _named_console_logger(*args: Any) -> _ConsoleLogger:
    return _ConsoleLogger(args[0] if args else None)


def _dumps_str(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


class _DebugOnly(logging.Filter):
    """Turns the listed INFO lines of one library logger into DEBUG lines."""

    def __init__(self, formats: frozenset[str]) -> None:
        super().__init__()
        self.formats = formats

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        if record.msg not in self.formats:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def demote_library_chatter() -> None:
    """Log the libraries' routine lines that duplicate ours (ARQ's per-job lines, Alembic's
    preamble) at DEBUG. Called by `configure_logging`, and by `tripline-migrate`, which logs
    through the standard library alone. Safe to call more than once."""
    for name, formats in _DEBUG_ONLY_LINES.items():
        library = logging.getLogger(name)
        for old in [f for f in library.filters if isinstance(f, _DebugOnly)]:
            library.removeFilter(old)
        library.addFilter(_DebugOnly(formats))


def configure_logging(settings: CommonSettings) -> None:
    """Configure structlog and the standard library so every log line has one shape.

    Safe to call more than once (tests build several apps in one process).
    """
    json_output = settings.effective_log_format == "json"
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _static_fields(settings),
        _add_trace_ids,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
    ]
    renderer: Processor
    native: tuple[Processor, Any]
    if json_output:
        # The standard library's formatting: file, line and source of each frame, no locals.
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_dumps_str)
        native = (
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
            structlog.BytesLoggerFactory(sys.stderr.buffer),
        )
    else:
        # Plain tracebacks, never frame locals: structlog's default (rich, or better-exceptions,
        # whichever is installed) prints every local of every frame, and frames hold device
        # keys, tokens and the database URL.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        native = (renderer, _named_console_logger)

    # Our own lines skip the standard library: structlog renders them and writes the bytes
    # itself (its documented fast path; the stdlib round trip cost ~40 µs per access-log line,
    # docs/performance.md). The libraries' stdlib records get the same processors below.
    structlog.configure(
        processors=[*shared, native[0]],
        logger_factory=native[1],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level]
        ),
        cache_logger_on_first_use=False,
    )

    # Our own lines never log a query string (the access log records the path only); the
    # libraries' lines get their credentials redacted.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _redact_foreign_message],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level)

    for name in _ROUTED_LOGGERS:
        lib_logger = logging.getLogger(name)
        lib_logger.handlers = []
        lib_logger.propagate = True
    for name in _QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        quiet.handlers = []
        quiet.propagate = False
    for name in _WARNING_ONLY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    demote_library_chatter()
    # SQL echo is noise unless asked for explicitly.
    logging.getLogger("sqlalchemy.engine").setLevel(
        logging.INFO if settings.db_echo else logging.WARNING
    )
    # What Python itself would print to stderr goes through the same formatter: warnings,
    # and exceptions nobody caught (the main thread's, other threads', unraisable ones).
    # A hook someone else installed (Sentry wraps ours; pytest has its own) is left alone.
    logging.captureWarnings(True)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _log_uncaught
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _log_uncaught_in_thread
    if sys.unraisablehook is sys.__unraisablehook__:
        sys.unraisablehook = _log_unraisable


_crash_log = logging.getLogger("tripline.crash")


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _crash_log.critical("uncaught_exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # What threading's own hook ignores too.
    thread = args.thread.name if args.thread is not None else None
    _crash_log.error(
        "uncaught_exception_in_thread",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        extra={"thread_name": thread},
    )


def _log_unraisable(args: Any) -> None:
    exc_info = (
        (args.exc_type, args.exc_value, args.exc_traceback) if args.exc_value is not None else None
    )
    _crash_log.error(
        "unraisable_exception",
        exc_info=exc_info,
        extra={"detail": args.err_msg or "Exception ignored", "object": _safe_repr(args.object)},
    )


def _safe_repr(value: object) -> str:
    try:
        return repr(value)[:200]
    except Exception:
        return f"<{type(value).__name__}>"


def get_logger(name: str | None = None, **initial: Any) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger; `initial` values are bound to every line it writes."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger.bind(**initial) if initial else logger
