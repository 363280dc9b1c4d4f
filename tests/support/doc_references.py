"""What a document names in the code, resolved: paths, `path.py: symbol` and test node IDs, so a
document that maps the code (practices, operations, security) fails a test when the code moves.

Forms a document may use, each inside backticks:
- a path from the repository root: `libs/common/src/tripline_common/data/db.py`, `docs/`;
- a path and the names it defines: `libs/common/src/tripline_common/data/db.py: unit_of_work`,
  `libs/common/src/tripline_common/messaging/queue.py: JobQueue.enqueue_after_commit`;
- a test: `services/api/tests/test_users.py::test_name`, or `::test_name` for another test of
  the file named last.

Documents written before this map (operations.md, README) also use the short forms
`common/…`, `api/…` (see `SHORTHAND`), `tripline_x/…`, a path inside a package
(`auth/deps.py`) and bare file names; `lenient=True` accepts those when they name exactly one
file.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# `path/to/test_file.py::test_name`, or `::test_name` for another test of the file named last.
NODE_ID = re.compile(r"`((?:[\w.-]+/)*test_\w+\.py)?::(test_\w+)`")
_SPAN = re.compile(r"`([^`\n]+)`")
_PATH_REF = re.compile(
    r"^(?P<path>[\w.-]+(?:/[\w.-]+)*/?)(?::\s*(?P<symbols>[A-Za-z_][\w.]*(?:,\s*[A-Za-z_][\w.]*)*))?$"
)
_FILE_SUFFIXES = (
    ".py", ".md", ".toml", ".yaml", ".yml", ".json", ".html", ".sh", ".tpl", ".txt", ".mako",
    ".css", ".js", ".example", ".cfg", ".ini", ".lock", ".tmpl",
)  # fmt: skip
_BARE_FILES = frozenset({"Makefile", "Tiltfile", "Dockerfile"})
SHORTHAND = {
    "common/": "libs/common/src/tripline_common/",
    "api/": "services/api/src/tripline_api/",
    "ingest/": "services/ingest/src/tripline_ingest/",
    "admin/": "services/admin/src/tripline_admin/",
    "worker/": "services/worker/src/tripline_worker/",
}
_SKIPPED_DIRS = frozenset({".venv", ".git", "node_modules", "__pycache__", ".mypy_cache"})


@dataclass(frozen=True)
class PathReference:
    """One path a document names, and the names it says that file defines."""

    path: str
    symbols: tuple[str, ...]


def path_references(text: str) -> list[PathReference]:
    """Every backticked path (with its symbols) in `text`; other code spans are left alone."""
    found = []
    for span in _SPAN.findall(text):
        match = _PATH_REF.match(span.strip())
        if match is None or "::" in span:
            continue
        path = match["path"]
        is_file = path.endswith(_FILE_SUFFIXES) or path in _BARE_FILES
        is_folder = path.endswith("/") and path.count("/") >= 1 and not path.startswith(".")
        if not (is_file or is_folder) or path in _FILE_SUFFIXES:
            continue  # `text/csv`, `X-Request-ID`, `tripline:alerts:*`, `.py`: not paths.
        if path.split("/", 1)[0] + "/" in _ignored_folders():
            continue  # Output of a run (`test-artifacts/`), not part of the repository.
        symbols = tuple(s.strip() for s in (match["symbols"] or "").split(",") if s.strip())
        found.append(PathReference(path, symbols))
    return found


@cache
def _files_named(name: str) -> tuple[Path, ...]:
    # Ignored folders hold what runs leave behind (`.local/` has tools with files of every name).
    skipped = _SKIPPED_DIRS | {folder.strip("/") for folder in _ignored_folders()}
    return tuple(
        path for path in ROOT.rglob(name) if not skipped.intersection(path.relative_to(ROOT).parts)
    )


@cache
def _ignored_folders() -> frozenset[str]:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip().endswith("/"))


@cache
def _source_roots() -> tuple[Path, ...]:
    """Each source tree and each package in it (`…/src`, `…/src/tripline_api`)."""
    trees = sorted(ROOT.glob("libs/*/src")) + sorted(ROOT.glob("services/*/src"))
    return tuple(trees) + tuple(package for tree in trees for package in sorted(tree.glob("*/")))


def locate(path: str, *, lenient: bool = False) -> Path | None:
    """The file or folder `path` names: from the repository root; with `lenient`, also the
    short forms, when they name exactly one."""
    exact = ROOT / path
    if exact.exists():
        return exact
    if not lenient:
        return None
    candidates: list[Path] = []
    for short, full in SHORTHAND.items():
        if path.startswith(short):
            candidates.append(ROOT / (full + path.removeprefix(short)))
    candidates += [source / path for source in _source_roots()]
    if "/" not in path.rstrip("/"):
        candidates += _files_named(path.rstrip("/"))
    existing = {candidate.resolve() for candidate in candidates if candidate.exists()}
    return existing.pop() if len(existing) == 1 else None


def _names_defined_in(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Functions, classes and assigned names of a module or class body (through if/try)."""
    names: dict[str, ast.stmt] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.If | ast.Try):
            for block in (node.body, node.orelse, *(h.body for h in getattr(node, "handlers", []))):
                names.update(_names_defined_in(block))
    return names


@cache
def _module_names(path: Path) -> dict[str, ast.stmt]:
    return _names_defined_in(ast.parse(path.read_text(), filename=str(path)).body)


def defines(path: Path, symbol: str) -> bool:
    """Whether the Python file defines `symbol` (`name`, or `Class.member`). Imports don't
    count: a document names where a thing is written, not where it passes through."""
    first, _, member = symbol.partition(".")
    node = _module_names(path).get(first)
    if node is None or not member:
        return node is not None
    return isinstance(node, ast.ClassDef) and defines_in_class(node, member)


def defines_in_class(node: ast.ClassDef, member: str) -> bool:
    return member in _names_defined_in(node.body)


def unresolved_paths(text: str, *, lenient: bool = False) -> list[str]:
    """The paths and `path: symbol`s of `text` that name nothing in the repository."""
    problems = []
    for ref in path_references(text):
        found = locate(ref.path, lenient=lenient)
        if found is None:
            problems.append(f"{ref.path} (no such file or folder)")
            continue
        for symbol in ref.symbols:
            if found.suffix != ".py" or not found.is_file():
                problems.append(f"{ref.path}: {symbol} (symbols only resolve in a .py file)")
            elif not defines(found, symbol):
                problems.append(f"{ref.path}: {symbol} (not defined there)")
    return problems


@cache
def functions_of(path: Path) -> frozenset[str]:
    """Names of the module-level test functions of a test file (parsed, not imported)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return frozenset(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    )


def cited_tests(text: str) -> list[tuple[str, str]]:
    """(file, test) for every node ID in `text`, resolving `::name` to the file named before."""
    cited: list[tuple[str, str]] = []
    last_file: str | None = None
    for match in NODE_ID.finditer(text):
        last_file = match.group(1) or last_file
        assert last_file, f"`::{match.group(2)}` names no file before it"
        cited.append((last_file, match.group(2)))
    return cited


def missing_tests(text: str) -> list[str]:
    """The node IDs of `text` whose file or test function does not exist."""
    missing = []
    for file, name in cited_tests(text):
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
        elif name not in functions_of(path):
            missing.append(f"{file}::{name}")
    return missing
