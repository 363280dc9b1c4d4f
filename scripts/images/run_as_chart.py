"""Run the built images the way the chart runs them, with podman, and check them like a kubelet.

Called by scripts/images.sh after the build. For the chosen values profile (ci by default) it
renders the chart with local overrides (ports, listen address, credentials pointing at the local
Postgres and Redis), then for each Deployment starts its image with the manifest's command,
args, environment, user and group, a read-only root filesystem with only /tmp writable (tmpfs,
like the emptyDir), all capabilities dropped and no-new-privileges. It runs the migrations Job's
command in the api image first and each wait-for-schema initContainer, then probes startup,
readiness and liveness, checks that the root filesystem is read-only and the user is the
manifest's, sends SIGTERM and checks the drain and the exit status within the grace period.
"""

# It runs podman with argument lists it builds itself, never through a shell.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from chart_render import render_profile  # noqa: E402
from chart_workloads import GRACEFUL_EXIT_CODES, Container, Workload, probe_once, workloads  # noqa: E402

from tripline_devstack import drop_database, ensure_database, free_port  # noqa: E402

PG = os.environ.get("TEST_PG_SERVER_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS = os.environ.get("TEST_REDIS_SERVER_URL", "redis://127.0.0.1:6379")


def podman(
    *args: str, check: bool = True, capture: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], check=check, capture_output=capture, text=True)


def run_args(name: str, image: str, container: Container, detach: bool) -> list[str]:
    args = ["run", "--name", name, "--network", "host", "--pull", "never"]
    args += ["-d"] if detach else ["--rm"]
    if container.run_as_user is not None:
        args += [
            "--user",
            f"{container.run_as_user}:{container.run_as_group or container.run_as_user}",
        ]
    if container.read_only_root:
        args += ["--read-only", "--read-only-tmpfs=false"]
    if container.tmp_mounted:
        args += ["--tmpfs", "/tmp:rw,size=64m,mode=1777"]  # noqa: S108 - the container's /tmp
    args += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for key, value in container.env.items():
        args += ["--env", f"{key}={value}"]
    entrypoint, *rest = container.argv
    return [*args, "--entrypoint", entrypoint, image, *rest]


def image_for(workload: Workload, tag: str) -> str:
    component = "api" if workload.kind == "Job" else workload.component
    return f"localhost/tripline-{component}:{tag}"


def state(name: str) -> tuple[str, int]:
    out = podman(
        "inspect", name, "--format", "{{.State.Status}} {{.State.ExitCode}}"
    ).stdout.split()
    return out[0], int(out[1])


def wait_probe(name: str, container: Container, kind: str) -> float:
    probe = container.probes[kind]
    started = time.monotonic()
    while True:
        status, code = state(name)
        if status != "running":
            raise AssertionError(
                f"{name} {status} ({code}):\n{podman('logs', name).stdout[-3000:]}"
            )
        ok, last = probe_once(probe)
        if ok:
            return time.monotonic() - started
        if time.monotonic() - started > probe.budget:
            raise AssertionError(
                f"{name}: {kind} {probe.path} failed for {probe.budget:g}s: {last}"
            )
        time.sleep(0.2)


def check_deployment(workload: Workload, tag: str, suffix: str) -> str:
    image = image_for(workload, tag)
    for init in workload.init_containers:
        result = podman(
            *run_args(f"{workload.name}-{init.name}-{suffix}", image, init, detach=False),
            check=False,
        )
        assert result.returncode == 0, (
            f"{workload.name} {init.name}: {result.stdout}{result.stderr}"
        )
    (container,) = workload.containers
    name = f"{workload.name}-{suffix}"
    podman(*run_args(name, image, container, detach=True))
    try:
        startup = wait_probe(name, container, "startup")
        wait_probe(name, container, "readiness")
        wait_probe(name, container, "liveness")
        user = podman("exec", name, "id", "-u").stdout.strip()
        assert user == str(container.run_as_user), f"{name} runs as {user}"
        if container.read_only_root:
            write = podman("exec", name, "sh", "-c", "touch /app/probe-write", check=False)
            assert write.returncode != 0, f"{name}: the root filesystem is writable"
        tmp = podman(
            "exec", name, "sh", "-c", "touch /tmp/probe-write && rm /tmp/probe-write", check=False
        )
        assert tmp.returncode == 0, f"{name}: /tmp is not writable: {tmp.stderr}"
        podman("kill", "--signal", "TERM", name)
        terminated = time.monotonic()
        drained = False
        while time.monotonic() - terminated < 3 and state(name)[0] == "running":
            if not probe_once(container.probes["readiness"])[0]:
                drained = probe_once(container.probes["liveness"])[0]
                break
            time.sleep(0.05)
        while state(name)[0] == "running":
            assert time.monotonic() - terminated < workload.termination_grace, (
                f"{name}: still running {workload.termination_grace}s after SIGTERM"
            )
            time.sleep(0.1)
        took = time.monotonic() - terminated
        code = state(name)[1]
        assert code in GRACEFUL_EXIT_CODES, (
            f"{name} exited {code}:\n{podman('logs', name).stdout[-3000:]}"
        )
        if float(container.env.get("SHUTDOWN_DRAIN_SECONDS", "0")) > 0:
            assert drained, f"{name}: readiness did not drop while serving after SIGTERM"
        size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout) // 2**20
        return (
            f"{image:34} {size:4d} MiB  ready in {startup:4.1f}s  uid {user}  read-only root  "
            f"SIGTERM -> drained, exit {code} after {took:4.1f}s"
            f" (grace {workload.termination_grace}s)"
        )
    finally:
        podman("rm", "-f", name, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci", choices=["ci", "prod"])
    parser.add_argument("--tag", default="dev")
    parser.add_argument("--services", default="api admin ingest worker")
    args = parser.parse_args()
    services = args.services.split()

    database = f"tripline_images_{uuid.uuid4().hex[:10]}"
    ensure_database(PG, database)
    database_url = f"{PG}/{database}"
    credentials = {
        "databaseUrl": database_url,
        "redisUrl": f"{REDIS}/13",
        "secretKey": "images-" + "k" * 40,
    }
    values: dict[str, Any] = {
        "components": {
            name: {
                "port": free_port(),
                "opsPort": free_port(),
                "env": {"HOST": "127.0.0.1"},
                "enabled": name in services,
            }
            for name in ("api", "admin", "ingest", "worker")
        },
        "config": {"ARQ_QUEUE_NAME": f"tripline:images:{uuid.uuid4().hex[:8]}"},
    }
    existing = {}
    if args.profile == "prod":
        existing["tripline-credentials"] = {
            "database-url": database_url,
            "redis-url": credentials["redisUrl"],
            "secret-key": credentials["secretKey"],
        }
    else:
        values["secrets"] = {"values": credentials}
    suffix = uuid.uuid4().hex[:6]
    failures = 0
    try:
        rendered = workloads(render_profile(args.profile, values), existing)
        jobs = [w for w in rendered if w.kind == "Job"]
        for job in jobs:
            result = podman(
                *run_args(
                    f"{job.name}-{suffix}",
                    image_for(job, args.tag),
                    job.containers[0],
                    detach=False,
                ),
                check=False,
            )
            print(f"{job.name} ({job.hook} hook): exit {result.returncode}", flush=True)
            if result.returncode != 0:
                print(result.stdout + result.stderr)
                return 1
        for workload in (w for w in rendered if w.kind == "Deployment"):
            try:
                print(check_deployment(workload, args.tag, suffix), flush=True)
            except AssertionError as exc:
                failures += 1
                print(f"FAILED {workload.name}: {exc}", flush=True)
    finally:
        drop_database(PG, database)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
