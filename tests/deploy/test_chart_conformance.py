"""Chart <-> process conformance: what the chart tells Kubernetes to run really runs.

For the ci and prod profiles, each rendered workload's command, args and environment (ConfigMap,
Secret and literals, resolved) start the real process here, against the test Postgres and Redis.
Only what a user would override for a local install is changed, through values: listen address,
ports (app and ops), the credentials (a scratch database, an isolated queue). The kubelet's view
is then replayed: startup, readiness and liveness probes on the manifest's paths, ports and
headers, within the manifest's thresholds; on SIGTERM readiness drops while the process still
serves, and it exits cleanly within terminationGracePeriodSeconds. The probe paths answer 404 on
the container's `http` port, which the Service and Ingress route to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from chart_render import ROOT, render_profile
from chart_workloads import (
    GRACEFUL_EXIT_CODES,
    IMAGE_ENV,
    Container,
    Workload,
    probe_once,
    workloads,
)

from tripline_common.migrations.runner import current_revision, head_revision, upgrade
from tripline_devstack import free_port

BIN = Path(sys.executable).parent
PROFILES = ["ci", "prod"]
EXISTING_SECRET = "tripline-credentials"  # values-prod.yaml: secrets.existingSecret
SECRET_KEY = "conformance-" + "k" * 40


def local_overrides(profile: str, database_url: str, redis_url: str) -> tuple[dict, dict]:
    """Values a user would set to run the release on one machine, and the stand-in for the
    Secret the prod profile expects to exist (secrets.existingSecret)."""
    components = {
        name: {"port": free_port(), "opsPort": free_port(), "env": {"HOST": "127.0.0.1"}}
        for name in ("api", "admin", "ingest", "worker")
    }
    values: dict = {
        "components": components,
        "config": {"ARQ_QUEUE_NAME": f"tripline:conformance:{uuid.uuid4().hex[:10]}"},
    }
    credentials = {"databaseUrl": database_url, "redisUrl": redis_url, "secretKey": SECRET_KEY}
    existing: dict = {}
    if profile == "prod":
        keys = {"databaseUrl": "database-url", "redisUrl": "redis-url", "secretKey": "secret-key"}
        existing[EXISTING_SECRET] = {keys[k]: v for k, v in credentials.items()}
    else:
        values["secrets"] = {"values": credentials}
    return values, existing


def process_env(container: Container) -> dict[str, str]:
    """The container's environment on this machine: the image's ENV, then the manifest's."""
    path = os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"])
    return {"PATH": path, "LANG": "C.UTF-8", **IMAGE_ENV, **container.env}


def start(container: Container, log_dir: Path) -> subprocess.Popen[bytes]:
    executable = shutil.which(container.argv[0], path=process_env(container)["PATH"])
    assert executable, f"{container.name}: command {container.argv[0]!r} not found on PATH"
    return subprocess.Popen(
        container.argv,
        env=process_env(container),
        stdout=(log_dir / f"{container.name}.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=log_dir,
        start_new_session=True,  # Its own group: `kill` reaches the app behind tini too.
    )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group: killed alone, tini cannot pass it on, and the app it
    started would outlive the test."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def log_tail(log_dir: Path, name: str) -> str:
    path = log_dir / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-25:]) if path.exists() else ""


def run_to_completion(container: Container, log_dir: Path, timeout: float) -> int:
    process = start(container, log_dir)
    try:
        return process.wait(timeout)
    finally:
        if process.poll() is None:
            kill(process)


def await_probe(
    container: Container, kind: str, process: subprocess.Popen[bytes], log: Callable[[], str]
) -> float:
    """Probe like the kubelet until `successThreshold` successes in a row; fail after the
    probe's own budget (initial delay + period x failureThreshold). Returns seconds taken."""
    probe = container.probes[kind]
    started = time.monotonic()
    time.sleep(probe.initial_delay)
    successes, failures, last = 0, 0, ""
    while True:
        assert process.poll() is None, f"{container.name} exited ({process.returncode}):\n{log()}"
        ok, last = probe_once(probe)
        successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
        if successes >= probe.success_threshold:
            return time.monotonic() - started
        # Between kubelet probes we poll faster; failures still count by the manifest's period.
        elapsed = time.monotonic() - started
        assert elapsed < probe.budget, (
            f"{container.name}: {kind} probe {probe.path} on :{probe.port} did not succeed within"
            f" {probe.budget:g}s (last: {last})\n{log()}"
        )
        time.sleep(min(0.2, probe.period))


def check_deployment(workload: Workload, log_dir: Path) -> str:
    """One Deployment's life as the kubelet sees it; returns a line for the test report."""
    assert len(workload.containers) == 1, f"{workload.name}: one container expected"
    for init in workload.init_containers:
        status = run_to_completion(init, log_dir, timeout=60)
        assert status == 0, (
            f"{workload.name}: initContainer {init.name} exited {status}:\n"
            + log_tail(log_dir, init.name)
        )
    container = workload.containers[0]
    assert set(container.probes) == {"startup", "readiness", "liveness"}, container.probes
    paths = {kind: probe.path for kind, probe in container.probes.items()}
    assert paths["liveness"] != paths["readiness"], "liveness must not check dependencies"
    process = start(container, log_dir)
    log = lambda: log_tail(log_dir, container.name)  # noqa: E731
    try:
        startup = await_probe(container, "startup", process, log)
        await_probe(container, "readiness", process, log)
        await_probe(container, "liveness", process, log)
        # The port clients reach (the Service's `http`, the Ingress) serves no probe or metrics.
        assert all(probe.port != container.port for probe in container.probes.values())
        for path in [*paths.values(), "/metrics"]:
            public = httpx.get(f"http://127.0.0.1:{container.port}{path}", timeout=5)
            assert public.status_code == 404, f"{container.name}: {path} on the app port"

        process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        readiness, liveness = container.probes["readiness"], container.probes["liveness"]
        drained = False
        while process.poll() is None and time.monotonic() - terminated < 3:
            ready, _ = probe_once(readiness)
            if not ready:
                alive, _ = probe_once(liveness)
                drained = alive  # not ready, yet still serving: endpoints drain first
                break
            time.sleep(0.05)
        drain = float(container.env.get("SHUTDOWN_DRAIN_SECONDS", "0"))
        if drain > 0:
            assert drained, (
                f"{container.name}: readiness did not drop while still serving after"
                f" SIGTERM\n{log()}"
            )
        try:
            status = process.wait(timeout=workload.termination_grace)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{container.name}: still running {workload.termination_grace}s"
                f" (terminationGracePeriodSeconds) after SIGTERM\n{log()}"
            ) from None
        took = time.monotonic() - terminated
        assert status in GRACEFUL_EXIT_CODES, f"{container.name}: exit status {status}\n{log()}"
        assert took >= drain, (
            f"{container.name}: exited after {took:.1f}s, before its {drain}s drain"
        )
        return (
            f"{workload.name}: started in {startup:.1f}s, drained and exited {status}"
            f" {took:.1f}s after SIGTERM (grace {workload.termination_grace}s)"
        )
    finally:
        if process.poll() is None:
            kill(process)


@pytest.fixture
def local_release(
    scratch_database: Callable[[], str], redis_url: str
) -> Callable[..., tuple[list[Workload], str]]:
    """Render a profile for this machine: (workloads, database URL)."""

    def make(profile: str, migrated: bool = True) -> tuple[list[Workload], str]:
        database_url = scratch_database()
        if migrated:
            upgrade(database_url)
        values, existing = local_overrides(profile, database_url, redis_url)
        return workloads(render_profile(profile, values), existing), database_url

    return make


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("profile", PROFILES)
def test_every_deployment_starts_probes_and_drains_as_the_manifest_says(
    profile: str, local_release, tmp_path: Path
) -> None:
    deployments = [w for w in (local_release(profile)[0]) if w.kind == "Deployment"]
    assert {w.component for w in deployments} == {"api", "admin", "ingest", "worker"}
    with ThreadPoolExecutor(max_workers=len(deployments)) as pool:
        futures = {w.name: pool.submit(check_deployment, w, tmp_path) for w in deployments}
        errors, report = [], []
        for name, future in futures.items():
            try:
                report.append(future.result())
            except AssertionError as exc:
                errors.append(f"{name}: {exc}")
    assert not errors, "\n\n".join(errors)
    print("\n".join(report))


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("profile", PROFILES)
def test_migrations_hook_migrates_and_the_schema_wait_lets_pods_start(
    profile: str, local_release, tmp_path: Path
) -> None:
    rendered, database_url = local_release(profile, migrated=False)
    jobs = {w.hook: w for w in rendered if w.kind == "Job"}
    assert set(jobs) == {"pre-install,pre-upgrade", "post-install,post-upgrade"}, jobs
    api = next(w for w in rendered if w.component == "api")
    (wait,) = api.init_containers

    # Before the hook ran, the app pods' initContainer keeps waiting (the pod is not started).
    waiting = start(wait, tmp_path)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=2)
        expand = jobs["pre-install,pre-upgrade"].containers[0]
        status = run_to_completion(expand, tmp_path, timeout=60)
        assert status == 0, log_tail(tmp_path, expand.name)
        assert current_revision(database_url) == head_revision()  # A first install: all of it.
        # ...and once the hook has migrated the database, it lets the pod start.
        assert waiting.wait(timeout=15) == 0, log_tail(tmp_path, wait.name)
    finally:
        if waiting.poll() is None:
            kill(waiting)
    # The contract hook, after the pods: nothing left to run, and it says so by succeeding.
    contract = jobs["post-install,post-upgrade"].containers[0]
    assert run_to_completion(contract, tmp_path, timeout=60) == 0, log_tail(tmp_path, contract.name)
    assert current_revision(database_url) == head_revision()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("profile", PROFILES)
def test_a_client_cannot_choose_its_address_with_the_charts_settings(
    profile: str, local_release, tmp_path: Path
) -> None:
    """The api as the chart runs it, reached directly by a client that forges X-Forwarded-For
    (this machine is no proxy the profile trusts): its session records the real peer."""
    rendered, database_url = local_release(profile)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed.py")],
        env={**os.environ, "DATABASE_URL": database_url, "ENVIRONMENT": "test"},
        check=True,
        timeout=60,
    )
    from scripts.seed import DEMO_PASSWORD

    api = next(w for w in rendered if w.kind == "Deployment" and w.component == "api")
    container = api.containers[0]
    process = start(container, tmp_path)
    try:
        log = lambda: log_tail(tmp_path, container.name)  # noqa: E731
        await_probe(container, "startup", process, log)
        await_probe(container, "readiness", process, log)
        # The profile's own host name (TRUSTED_HOSTS), as the Ingress would pass it on.
        host = container.env["TRUSTED_HOSTS"].split(",")[0]
        with httpx.Client(
            base_url=f"http://127.0.0.1:{container.port}", headers={"Host": host}, timeout=10
        ) as client:
            login = client.post(
                "/v1/auth/token",
                data={"username": "demo@tripline.dev", "password": DEMO_PASSWORD},
                headers={"X-Forwarded-For": "1.2.3.4"},
            )
            assert login.status_code == 200, login.text
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            sessions = client.get("/v1/auth/sessions", headers=bearer).raise_for_status()
    finally:
        # SIGTERM, which tini passes on: a SIGKILL would end tini alone and orphan the api.
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            kill(process)
    assert [s["ip"] for s in sessions.json()] == ["127.0.0.1"]
