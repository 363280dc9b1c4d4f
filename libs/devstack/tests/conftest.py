"""Fixtures for the devstack tests: embedded servers shared by a module, a port nobody uses."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tripline_devstack import EmbeddedPostgres, EmbeddedRedis, free_port


@contextlib.contextmanager
def fresh_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tripline-devstack-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A new, empty directory for servers' data, removed afterwards.

    Not pytest's `tmp_path`: as root the servers run as another account, which must be able to
    enter every directory above its data, and pytest resets its base directory
    (/tmp/pytest-of-root) to mode 0700 whenever any pytest session starts on the machine.
    """
    with fresh_dir() as path:
        yield path


@pytest.fixture(scope="module")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One embedded Postgres for the tests of a module that only need a server to talk to."""
    with fresh_dir() as path, EmbeddedPostgres(path) as server:
        yield server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One embedded Redis for the tests of a module that only need a server to talk to."""
    with fresh_dir() as path, EmbeddedRedis(path) as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    return free_port()
