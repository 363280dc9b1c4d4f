"""A CycloneDX SBOM per image, from uv.lock: the packages `deploy/Dockerfile` installs for one
service (its locked dependencies, libs/common and the service itself, `uv sync --no-dev
--package tripline-<service>`), each with its pinned version, validated against the CycloneDX
JSON schema. `make sbom` writes them; `make images` too, for the Python of the images it built.

    uv run python scripts/sbom.py                                  # .local/sbom/tripline-*.cdx.json
    uv run python scripts/sbom.py --services ingest --python-version 3.11.14 --out /tmp/sbom
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from packaging.markers import Marker, default_environment
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ["api", "admin", "ingest", "worker"]
OUT = ROOT / ".local" / "sbom"
SCHEMA_VERSION = SchemaVersion.V1_6


@dataclass(frozen=True)
class Package:
    """One distribution an image installs; `workspace`: built from this repository."""

    name: str
    version: str
    workspace: bool = False


def image_environment(python_version: str) -> dict[str, str]:
    """PEP 508 marker values inside the image: Debian bookworm, x86-64, CPython `python_version`."""
    environment = {key: str(value) for key, value in default_environment().items()}
    environment.update(
        python_full_version=python_version,
        python_version=".".join(python_version.split(".")[:2]),
        implementation_name="cpython",
        implementation_version=python_version,
        platform_python_implementation="CPython",
        platform_system="Linux",
        sys_platform="linux",
        os_name="posix",
        platform_machine="x86_64",
    )
    return environment


def locked_requirements(service: str) -> str:
    """What `uv sync --no-dev --no-editable --package tripline-<service>` installs, as uv.lock
    pins it (markers unevaluated)."""
    command = ["uv", "export", "--frozen", "--no-dev", "--no-editable", "--no-hashes"]
    command += ["--no-header", "--no-annotate", "--package", f"tripline-{service}"]
    exported = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)  # noqa: S603
    return exported.stdout


def image_packages(requirements: str, environment: dict[str, str]) -> list[Package]:
    """The packages of an exported requirements file installed in `environment`."""
    packages = []
    for line in requirements.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, _, marker = (part.strip() for part in line.partition(";"))
        if marker and not Marker(marker).evaluate(environment):
            continue
        if requirement.startswith("./"):  # a workspace member, installed from its source
            project = tomllib.loads((ROOT / requirement / "pyproject.toml").read_text())["project"]
            packages.append(Package(project["name"], project["version"], workspace=True))
        else:
            name, _, version = requirement.partition("==")
            packages.append(Package(name, version))
    return sorted(packages, key=lambda p: canonicalize_name(p.name))


def locked_dependencies() -> dict[tuple[str, str], set[str]]:
    """(name, version) -> the names of the packages it depends on, as uv.lock records them."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    graph: dict[tuple[str, str], set[str]] = {}
    for package in lock["package"]:
        depends: set[str] = {canonicalize_name(d["name"]) for d in package.get("dependencies", [])}
        for extra in package.get("optional-dependencies", {}).values():
            depends |= {canonicalize_name(d["name"]) for d in extra}
        version = package.get("version", "")
        graph[(canonicalize_name(package["name"]), version)] = depends
    return graph


def sbom(service: str, version: str, packages: Iterable[Package]) -> str:
    """The image's SBOM as CycloneDX JSON, validated against the specification's schema: its
    packages, and which depends on which (uv.lock's edges between the packages installed; an
    extra's edges count when the extra's package is installed)."""
    bom = Bom()
    image = bom.metadata.component = Component(
        name=f"tripline-{service}",
        version=version,
        type=ComponentType.CONTAINER,
        bom_ref=f"image:tripline-{service}",
        description=f"The tripline-{service} image (deploy/Dockerfile, SERVICE={service})",
    )
    components: dict[str, tuple[Package, Component]] = {}
    for package in packages:
        component = Component(
            name=package.name,
            version=package.version,
            type=ComponentType.APPLICATION if package.workspace else ComponentType.LIBRARY,
            bom_ref=f"{package.name}@{package.version}",
            purl=None
            if package.workspace
            else PackageURL("pypi", name=canonicalize_name(package.name), version=package.version),
            description="Built from this repository (uv workspace member)"
            if package.workspace
            else None,
        )
        components[canonicalize_name(package.name)] = (package, component)
        bom.components.add(component)
    graph = locked_dependencies()
    for name, (package, component) in components.items():
        depends = graph.get((name, package.version), set())
        bom.register_dependency(
            component, [components[d][1] for d in sorted(depends & set(components))]
        )
    bom.register_dependency(image, [components[f"tripline-{service}"][1]])
    text = make_outputter(bom, OutputFormat.JSON, SCHEMA_VERSION).output_as_string(indent=2)
    error = JsonStrictValidator(SCHEMA_VERSION).validate_str(text)
    if error is not None:
        raise ValueError(f"tripline-{service} SBOM is not valid CycloneDX: {error}")
    return text + "\n"


def write_sboms(services: Iterable[str], out: Path, python_version: str) -> list[Path]:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    environment = image_environment(python_version)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for service in services:
        packages = image_packages(locked_requirements(service), environment)
        path = out / f"tripline-{service}.cdx.json"
        path.write_text(sbom(service, version, packages))
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", nargs="+", default=SERVICES, choices=SERVICES)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--python-version",
        default=platform.python_version(),
        help="the image's Python (markers such as python_full_version < '3.11.3' depend on it)",
    )
    args = parser.parse_args()
    for path in write_sboms(args.services, args.out, args.python_version):
        count = len(json.loads(path.read_text())["components"])
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"wrote {shown}: {count} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
