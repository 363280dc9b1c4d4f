# Tripline: thin wrappers over uv and scripts/. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, or the copy `pip install uv` left in this Python (installed on first use).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: help uv install dev test lint format typecheck migrate seed clean rehearse

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

uv: ## Install uv with pip when it is missing
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

install: uv ## Create .venv from uv.lock (Python 3.11 from the machine, nothing downloaded)
	@$(UV) sync --frozen --python python3.11 --quiet

dev: install ## Run the whole system: Postgres, Redis (embedded if none answer), 4 processes
	@$(UV) run --frozen python scripts/dev.py

# One xdist worker per core, each with its own database and Redis database (conftest.py); the
# process tests mostly wait, so the cores stay busy. PYTEST_ARGS adds to it (e.g. -k, -x).
TEST_WORKERS ?= auto

test: install ## Run the whole test suite against real Postgres and Redis, one worker per core
	@$(UV) run --frozen pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: install ## Lint, check formatting (ruff) and types (mypy strict, every package and scripts/)
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen mypy

format: install ## Format and auto-fix (ruff)
	@$(UV) run --frozen ruff format .
	@$(UV) run --frozen ruff check --fix .

migrate: install ## Upgrade the database at DATABASE_URL to the latest migration
	@$(UV) run --frozen tripline-migrate upgrade head

seed: install ## Load demo data into the database at DATABASE_URL (dev only)
	@$(UV) run --frozen python scripts/seed.py

clean: ## Remove local data (embedded servers' data dirs) and caches
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache

# --- Shipping: images, charts, Tilt (docs/deploying.md) ------------------------------------------
.PHONY: images sbom charts charts-golden charts-docs

images: install ## Build the 4 images with podman, run each as the chart does (scripts/images.sh)
	@bash scripts/images.sh

sbom: install ## Write a CycloneDX SBOM per image from uv.lock, validated (.local/sbom/; make images does too)
	@$(UV) run --frozen python scripts/sbom.py

charts: install ## Prove chart, Dockerfile and Tiltfile offline (tests/deploy)
	@$(UV) run --frozen pytest tests/deploy -q

charts-golden: install ## Refresh the golden renders in helm/golden/ after a chart change
	@$(UV) run --frozen python scripts/chart_render.py --write-golden

charts-docs: install ## Regenerate the values table of helm/tripline/README.md and the chart's list of settings per component
	@$(UV) run --frozen python scripts/chart_docs.py
	@$(UV) run --frozen python scripts/chart_settings.py

# --- API contract: the OpenAPI snapshots (docs/api-contract.md) ------------------------------------
.PHONY: openapi-snapshot contract soak

openapi-snapshot: install ## Rewrite docs/openapi/*.json and docs/asyncapi/api.json after a deliberate API change (breaking: ALLOW_BREAKING="why")
	@$(UV) run --frozen python -m scripts.openapi_snapshot

soak: install ## Chaos soak: the fleet against replicas while faults are injected (SOAK_ARGS="--minutes 60 --devices 8"; docs/soak.md)
	@$(UV) run --frozen python scripts/soak.py $(SOAK_ARGS)

rehearse: install ## Rehearse a rolling upgrade and rollback under load with real processes (docs/operations.md)
	@$(UV) run --frozen python scripts/rehearse.py $(REHEARSE_ARGS)

contract: install ## The long contract run: schemathesis, every check and phase, 200 examples (docs/api-contract.md)
	@CONTRACT_EXAMPLES=$(or $(CONTRACT_EXAMPLES),200) $(UV) run --frozen pytest tests/test_api_contract.py -q --durations=0

# --- Benchmarks (docs/performance.md) ------------------------------------------------------------
.PHONY: bench-scale bench-e2e

bench-scale: install ## Cost as the data grows: issue 18's volumes (BENCH_SCALE_ARGS="--scale 1.0 --keep")
	@$(UV) run --frozen python scripts/bench_scale.py $(BENCH_SCALE_ARGS)

bench-e2e: install ## The pipeline end to end: the maximum rate, upload-to-alert latency (WebSocket, webhook), CPU per million events (BENCH_E2E_ARGS)
	@$(UV) run --frozen python scripts/bench_e2e.py $(BENCH_E2E_ARGS)
