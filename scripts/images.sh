#!/usr/bin/env bash
# `make images`: build the four service images with podman from deploy/Dockerfile, then run each
# one exactly as the chart runs it (command, env, user, read-only root filesystem, /tmp only
# writable) against the local Postgres and Redis, and check its probes and its SIGTERM handling.
# Each image's CycloneDX SBOM (from uv.lock) goes to .local/sbom/ (scripts/sbom.py).
#
# Offline machines: when the public base images cannot be pulled (no registry reachable), it
# builds stand-ins locally and passes them as build args, so the same Dockerfile is used:
#   python:3.11-slim-bookworm  <- debootstrap --variant=minbase bookworm + Debian's python3
#   ghcr.io/astral-sh/uv       <- the uv binary this checkout already uses (from PyPI)
#
# Environment: SERVICES="api admin ingest worker", TAG=dev, PROFILE=ci (values profile to run),
# SKIP_RUN=1 (build only), IMAGES_DIR=.local/images (rootfs cache, containers.conf).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SERVICES=${SERVICES:-"api admin ingest worker"}
TAG=${TAG:-dev}
PROFILE=${PROFILE:-ci}
IMAGES_DIR=${IMAGES_DIR:-$ROOT/.local/images}
PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm
UV_VERSION=$(sed -n 's#^ARG UV_IMAGE=ghcr.io/astral-sh/uv:##p' deploy/Dockerfile)
UV_IMAGE=ghcr.io/astral-sh/uv:${UV_VERSION}
LOCAL_PYTHON_IMAGE=localhost/tripline-base/python:3.11-slim-bookworm
LOCAL_UV_IMAGE=localhost/tripline-base/uv:${UV_VERSION}

log() { printf '\033[1;34m[images]\033[0m %s\n' "$*" >&2; }

# --- tools ----------------------------------------------------------------------------------
need_apt=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

UV=$(command -v uv 2>/dev/null || echo "python3 -m uv")
log "hadolint deploy/Dockerfile"
$UV run --frozen hadolint --failure-threshold info deploy/Dockerfile

# runc, not crun (crun fails on this kind of VM's mixed cgroups); sane ulimits for the apps.
mkdir -p "$IMAGES_DIR"
export CONTAINERS_CONF=$IMAGES_DIR/containers.conf
cat >"$CONTAINERS_CONF" <<'CONF'
# Written by scripts/images.sh.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF

# --- base images ----------------------------------------------------------------------------
pull_quietly() { timeout 60 podman pull -q "$1" >/dev/null 2>&1; }

python_image=$PYTHON_IMAGE
if ! podman image exists "$PYTHON_IMAGE" && ! pull_quietly "$PYTHON_IMAGE"; then
  python_image=$LOCAL_PYTHON_IMAGE
  if ! podman image exists "$LOCAL_PYTHON_IMAGE"; then
    log "cannot pull $PYTHON_IMAGE: building a stand-in with debootstrap (about 1.5 minutes)"
    rootfs=$IMAGES_DIR/rootfs-bookworm
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,ca-certificates,netbase,tzdata \
      bookworm "$rootfs" http://deb.debian.org/debian >"$IMAGES_DIR/debootstrap.log" 2>&1 \
      || { tail -20 "$IMAGES_DIR/debootstrap.log" >&2; exit 1; }
    # Same shape as the official image: apt lists empty, python3.11 on PATH, UTF-8 locale.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | podman import \
      --change 'ENV LANG=C.UTF-8' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["python3"]' - "$LOCAL_PYTHON_IMAGE" >/dev/null
    rm -rf "$rootfs"
  fi
fi

uv_image=$UV_IMAGE
if ! podman image exists "$UV_IMAGE" && ! pull_quietly "$UV_IMAGE"; then
  uv_image=$LOCAL_UV_IMAGE
  if ! podman image exists "$LOCAL_UV_IMAGE"; then
    uv_bin=$(python3 -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null || command -v uv)
    have=$("$uv_bin" --version | awk '{print $2}')
    [[ $have == "$UV_VERSION" ]] || log "warning: local uv is $have, the Dockerfile pins $UV_VERSION"
    log "cannot pull $UV_IMAGE: packaging the local uv binary ($uv_bin) as $LOCAL_UV_IMAGE"
    ctx=$(mktemp -d)
    cp "$(readlink -f "$uv_bin")" "$ctx/uv"
    printf 'FROM scratch\nCOPY uv /uv\n' >"$ctx/Containerfile"
    podman build -q --pull=never -t "$LOCAL_UV_IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
fi

# --- build ----------------------------------------------------------------------------------
build_args=(
  --pull=never
  --format docker
  --build-arg "PYTHON_IMAGE=$python_image"
  --build-arg "UV_IMAGE=$uv_image"
  --build-arg "VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
  --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  --ignorefile deploy/Dockerfile.dockerignore
  -f deploy/Dockerfile
)
# A TLS-intercepting proxy's CA (as on these machines) reaches uv as a build secret only.
ca=${SSL_CERT_FILE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
[[ -s $ca ]] && build_args+=(--secret "id=ca,src=$ca")

for service in $SERVICES; do
  log "building tripline-$service:$TAG (base $python_image)"
  start=$SECONDS
  build_log=$IMAGES_DIR/build-$service.log
  podman build "${build_args[@]}" --build-arg "SERVICE=$service" --target runtime \
    -t "localhost/tripline-$service:$TAG" . >"$build_log" 2>&1 \
    || { tail -30 "$build_log" >&2; log "build of tripline-$service failed (log: $build_log)"; exit 1; }
  size=$(podman image inspect "localhost/tripline-$service:$TAG" --format '{{.Size}}')
  log "built tripline-$service:$TAG in $((SECONDS - start))s, $((size / 1024 / 1024)) MiB"
done

# --- SBOMs ------------------------------------------------------------------------------------
# One CycloneDX SBOM per image from uv.lock (scripts/sbom.py, also `make sbom`), for the Python
# the image runs: environment markers (python_full_version < '3.11.3') depend on it.
for service in $SERVICES; do
  python_version=$(podman run --rm --entrypoint /app/.venv/bin/python "localhost/tripline-$service:$TAG" \
    -c 'import platform; print(platform.python_version())')
  $UV run --frozen python scripts/sbom.py --services "$service" --python-version "$python_version" \
    --out "$ROOT/.local/sbom"
done

[[ ${SKIP_RUN:-0} == 1 ]] && exit 0

# --- run as the chart says ------------------------------------------------------------------
log "running the images as the chart's $PROFILE profile describes them"
$UV run --frozen python scripts/images/run_as_chart.py --profile "$PROFILE" --tag "$TAG" \
  --services "$SERVICES"
