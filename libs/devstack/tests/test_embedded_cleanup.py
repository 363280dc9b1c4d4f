"""Embedded servers never outlive the process that started them, and leftovers are cleaned up."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from devstack_helpers import eventually, process_group_is_gone

from tripline_devstack import EmbeddedPostgres, EmbeddedRedis, postgres_answers, redis_answers

SERVERS = {"postgres": EmbeddedPostgres, "redis": EmbeddedRedis}

# A program that starts one server (on its main thread, or on another thread, where Linux cannot
# tie the server's life to ours), reports "PORT PID" and then idles until a signal ends it.
CONTROLLER = """
import signal, sys, threading, time
from pathlib import Path
# A shell that starts jobs in the background (nohup, `&` in a script) makes them ignore SIGINT,
# and Python then installs no KeyboardInterrupt handler: restore it, as a terminal would have.
signal.signal(signal.SIGINT, signal.default_int_handler)
from tripline_devstack import EmbeddedPostgres, EmbeddedRedis

kind, data_dir, thread = sys.argv[1:4]
server = {"postgres": EmbeddedPostgres, "redis": EmbeddedRedis}[kind](Path(data_dir))
if thread == "main":
    server.start()
else:
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
print(server.port, server.pid, flush=True)
time.sleep(60)
"""


def start_controller(
    kind: str, data_dir: Path, thread: str
) -> tuple[subprocess.Popen[str], int, int]:
    """Run CONTROLLER; return it with the port and pid of the server it started."""
    controller = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, kind, str(data_dir), thread],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert controller.stdout is not None
    ready, _, _ = select.select([controller.stdout], [], [], 30)
    line = controller.stdout.readline() if ready else ""
    if not line:
        controller.kill()
        _, errors = controller.communicate()
        pytest.fail(f"the controller did not start its {kind} server:\n{errors}")
    port, pid = (int(word) for word in line.split())
    return controller, port, pid


def answers(kind: str, port: int) -> bool:
    if kind == "postgres":
        return postgres_answers(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout=1)
    return redis_answers(f"redis://127.0.0.1:{port}/0", timeout=1)


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize(
    "how_it_ends",
    [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
    ids=["ctrl-c", "sigterm", "sigkill"],
)
def test_server_stops_when_the_process_that_started_it_ends(
    kind: str, how_it_ends: signal.Signals, data_dir: Path
) -> None:
    controller, port, pid = start_controller(kind, data_dir, thread="main")
    assert answers(kind, port)

    controller.send_signal(how_it_ends)
    controller.communicate(timeout=15)

    assert eventually(lambda: process_group_is_gone(pid)), f"{kind} outlived its parent"
    assert not answers(kind, port)


@pytest.mark.parametrize("kind", SERVERS)
def test_next_start_stops_a_server_that_a_killed_process_left_running(
    kind: str, data_dir: Path
) -> None:
    controller, port, leftover_pid = start_controller(kind, data_dir, thread="other")
    controller.kill()
    controller.communicate(timeout=15)
    assert answers(kind, port), "started off the main thread, the server outlives a SIGKILL"

    with SERVERS[kind](data_dir) as server:
        assert eventually(lambda: process_group_is_gone(leftover_pid))
        assert server.pid != leftover_pid
        assert answers(kind, server.port)
    assert not answers(kind, port)
