"""A CycloneDX SBOM per image from uv.lock (scripts/sbom.py, `make sbom`, `make images`): valid
under the CycloneDX JSON schema, and listing exactly what a real `uv sync` of that service, as
deploy/Dockerfile runs it, installs."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import sbom
from cyclonedx.validation.json import JsonStrictValidator
from packaging.utils import canonicalize_name

from tests.deploy.conftest import _uv


@pytest.fixture(scope="module")
def sboms(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("sbom")
    paths = sbom.write_sboms(sbom.SERVICES, out, platform.python_version())
    assert [p.name for p in paths] == [f"tripline-{s}.cdx.json" for s in sbom.SERVICES]
    return {s: json.loads(p.read_text()) for s, p in zip(sbom.SERVICES, paths, strict=True)}


def packages(document: dict) -> dict[str, str]:
    return {canonicalize_name(c["name"]): c["version"] for c in document["components"]}


@pytest.mark.parametrize("service", sbom.SERVICES)
def test_each_image_sbom_is_valid_cyclonedx(sboms, service: str) -> None:
    document = sboms[service]
    assert JsonStrictValidator(sbom.SCHEMA_VERSION).validate_str(json.dumps(document)) is None
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.6")
    image = document["metadata"]["component"]
    assert (image["type"], image["name"]) == ("container", f"tripline-{service}")
    refs = {c["bom-ref"] for c in document["components"]} | {image["bom-ref"]}
    for dependency in document["dependencies"]:
        assert {dependency["ref"], *dependency.get("dependsOn", [])} <= refs


@pytest.mark.parametrize("service", sbom.SERVICES)
def test_each_image_sbom_lists_exactly_what_installing_its_service_installs(
    sboms, service: str, tmp_path: Path
) -> None:
    # The Dockerfile's install, into a virtualenv of our own, on this machine's Python 3.11.
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    sync = ["sync", "--frozen", "--no-dev", "--no-editable", "--package", f"tripline-{service}"]
    subprocess.run(
        [*_uv(), *sync, "--python", sys.executable, "--quiet"],
        cwd=sbom.ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    listed = subprocess.run(
        [*_uv(), "pip", "list", "--python", str(venv / "bin" / "python"), "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    assert packages(sboms[service]) == installed


def test_the_ingest_image_lists_its_driver_and_no_other_service(sboms) -> None:
    ingest, admin, worker = (packages(sboms[s]) for s in ("ingest", "admin", "worker"))
    assert {"asyncpg", "tripline-common", "tripline-ingest"} <= set(ingest)
    assert not {"tripline-admin", "tripline-api", "tripline-worker", "aiosmtplib"} & set(ingest)
    assert "tripline-ingest" not in admin
    assert "aiosmtplib" in worker


def test_environment_markers_follow_the_images_python() -> None:
    # async-timeout is locked for python_full_version < '3.11.3' only (Debian bookworm's 3.11.2).
    requirements = sbom.locked_requirements("worker")
    old = {p.name for p in sbom.image_packages(requirements, sbom.image_environment("3.11.2"))}
    new = {p.name for p in sbom.image_packages(requirements, sbom.image_environment("3.11.14"))}
    assert old - new == {"async-timeout"}


def test_an_sbom_that_breaks_the_schema_is_refused(sboms) -> None:
    broken = json.loads(json.dumps(sboms["api"]))
    del broken["components"][0]["name"]
    assert JsonStrictValidator(sbom.SCHEMA_VERSION).validate_str(json.dumps(broken)) is not None
