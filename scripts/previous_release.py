"""The previous release's code, runnable: its source tree at a commit and a virtualenv of its own.

There are no release tags, so the previous release is the last code that ran on the previous
schema: the parent of the commit that added the current head revision's file. That commit is
found from git on every run, so it moves on with each new revision (docs/operations.md, "Old
code on the new schema, and rollback").

The tree is exported with `git archive` (no worktree to register in the repository, nothing to
clean up if a run is killed) into `.local/previous-release/<commit>/`, and `uv sync --no-dev`
gives it its own virtualenv from its own `uv.lock` (its dependencies differ from ours). Both
stay there for the next run; a file lock lets concurrent xdist workers build it once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory

from tripline_common.migrations.runner import head_revision, make_config

CACHE = Path(".local") / "previous-release"
READY_MARK = ".tripline-ready"
# A deadline for a build that hangs, not a measurement: a fresh machine downloads the wheels.
BUILD_DEADLINE_SECONDS = 600


class PreviousReleaseError(AssertionError):
    """The previous release cannot be found or built (a shallow clone, a missing commit)."""


@dataclass(frozen=True)
class PreviousRelease:
    """The previous release's commit, its exported tree and its virtualenv's scripts."""

    commit: str
    head_file: str
    """The current head revision's file, whose adding commit's parent is `commit`."""
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / ".venv" / "bin"

    def env(self) -> dict[str, str]:
        """What its processes need beside the test's environment: its own virtualenv."""
        return {"VIRTUAL_ENV": str(self.root / ".venv")}


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(  # noqa: S603 - git on our own arguments
        ["git", *args],  # noqa: S607 - git from PATH
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise PreviousReleaseError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def head_revision_file(root: Path) -> str:
    """The current head revision's file, relative to the repository root."""
    script = ScriptDirectory.from_config(make_config()).get_revision(head_revision())
    if script is None or script.path is None:
        raise PreviousReleaseError(f"no file for the head revision {head_revision()}")
    return str(Path(script.path).resolve().relative_to(root.resolve()))


def previous_release_commit(root: Path, head_file: str) -> str:
    """The parent of the commit that added `head_file` (the head revision's file); HEAD itself
    while that file is not committed yet (a revision being written: HEAD is the newest code on
    the previous schema). Raises `PreviousReleaseError` on a shallow clone, or when the history
    holds no commit adding it."""
    if _git(root, "rev-parse", "--is-shallow-repository") == "true":
        raise PreviousReleaseError(
            "the repository is a shallow clone: the previous release's commit needs the full"
            " history (git fetch --unshallow)"
        )
    committed = subprocess.run(  # noqa: S603
        ["git", "cat-file", "-e", f"HEAD:{head_file}"],  # noqa: S607 - git from PATH
        cwd=root,
        capture_output=True,
        timeout=60,
    )
    if committed.returncode != 0:
        return _git(root, "rev-parse", "--verify", "HEAD")
    added = _git(root, "log", "--diff-filter=A", "--format=%H", "--", head_file).splitlines()
    if not added:
        raise PreviousReleaseError(f"no commit in this history adds {head_file}")
    # The newest commit adding it (log lists newest first); its parent still ran without it.
    return _git(root, "rev-parse", "--verify", f"{added[0]}^")


def _uv() -> list[str]:
    """uv from PATH, or the copy `pip install uv` left in this Python (as the Makefile)."""
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def _build(root: Path, commit: str, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)  # A build cut short: start again.
    target.mkdir(parents=True)
    archive = subprocess.run(  # noqa: S603
        ["git", "archive", "--format=tar", commit],  # noqa: S607 - git from PATH
        cwd=root,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if archive.returncode != 0:
        raise PreviousReleaseError(
            f"git archive {commit} failed: {archive.stderr.decode(errors='replace').strip()}"
        )
    subprocess.run(  # noqa: S603
        ["tar", "-x", "-C", str(target)],  # noqa: S607 - tar from PATH
        input=archive.stdout,
        check=True,
        timeout=120,
    )
    # Its own lock file, without the dev tools: the runtime it shipped with. The test run's
    # virtualenv must not leak in.
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    synced = subprocess.run(  # noqa: S603 - uv on our own arguments
        [*_uv(), "sync", "--frozen", "--no-dev", "--python", "python3.11", "--quiet"],
        cwd=target,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_DEADLINE_SECONDS,
        check=False,
    )
    if synced.returncode != 0:
        raise PreviousReleaseError(f"uv sync of {commit} failed:\n{synced.stderr[-3000:]}")
    (target / READY_MARK).write_text(commit + "\n")


def previous_release(root: Path) -> PreviousRelease:
    """The previous release, exported and synced under `root`'s `.local/` (once per commit)."""
    head_file = head_revision_file(root)
    commit = previous_release_commit(root, head_file)
    cache = root / CACHE
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / commit
    with (cache / f"{commit}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # Other xdist workers wait for the one building it.
        if not (target / READY_MARK).exists():
            for stale in cache.iterdir():  # The release before: 80 MB nobody needs any more.
                if stale.is_dir() and stale.name != commit:
                    shutil.rmtree(stale, ignore_errors=True)
            _build(root, commit, target)
    release = PreviousRelease(commit, head_file, target)
    if not (release.bin / "python").exists():
        raise PreviousReleaseError(f"{release.bin} has no python after the build")
    return release


def run(
    release: PreviousRelease, command: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run one of the previous release's console scripts to its end."""
    return subprocess.run(  # noqa: S603 - the release's own console scripts
        [str(release.bin / command), *args],
        env={**env, **release.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
