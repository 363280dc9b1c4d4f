"""Safe scale-in, as rendered: in every values profile the worker's grace period covers its whole
shutdown, and its job completion wait covers the longest job it runs, so a pod removed by a
scale-in (or a rollout, or a node drain) lets every running job end as it would have anyway.

The numbers come from the render (the worker's environment, its ConfigMap, its preStop sleep,
its grace period) and, where the render sets nothing, from the worker's own settings and job
list (`WorkerServiceSettings`, `worker_functions`, `cron_jobs`): never copies of them.
"""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import PROFILES, Render, render_profile
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from tripline_worker.runner import cron_jobs, worker_functions
from tripline_worker.settings import WorkerServiceSettings

# Time after the completion wait to cancel what is left, hand it back to the queue, close the
# pools and exit: well under a second in tests/test_worker_scale_in.py, so 2 s is ample.
SHUTDOWN_MARGIN_SECONDS = 2
# A profile that installs none of these installs no Tripline app (dev-databases).
APP_COMPONENTS = {"api", "admin", "ingest", "worker"}
# The chart's defaults alone need a Secret name to render.
PROFILE_OVERRIDES: dict[str, list[dict[str, Any]]] = {
    "default": [{"secrets": {"existingSecret": "tripline-credentials"}}]
}


class RenderedWorkerSettings(WorkerServiceSettings):
    """The worker's settings from a rendered environment only: this process's environment and
    `.env` stay out, so a variable of the developer's cannot stand in for the chart's."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def component(deployment: dict[str, Any]) -> str:
    return deployment["metadata"]["labels"]["app.kubernetes.io/component"]


def container_env(rendered: Render, container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: its ConfigMaps, then its own `env`
    (values only: the Secret's keys hold no timing)."""
    config_maps = {
        ref["configMapRef"]["name"]
        for ref in container.get("envFrom") or []
        if "configMapRef" in ref
    }
    env = {
        key: value
        for config_map in rendered.kind("ConfigMap")
        if config_map["metadata"]["name"] in config_maps
        for key, value in (config_map.get("data") or {}).items()
    }
    return env | {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}


def worker_settings(env: dict[str, str]) -> WorkerServiceSettings:
    """The settings the rendered worker starts with. `ENVIRONMENT` is set to test: its staging
    and prod refusals check credentials that live in the Secret, outside the render."""
    fields = WorkerServiceSettings.model_fields
    values = {key.lower(): value for key, value in env.items() if key.lower() in fields}
    return RenderedWorkerSettings(**{**values, "environment": "test"})


def longest_job_timeout(settings: WorkerServiceSettings) -> int:
    """The longest timeout of any job this worker runs: a job's own, else `JOB_TIMEOUT`
    (as ARQ's `Worker` computes its in-progress marker's lifetime)."""
    jobs = [*worker_functions(settings), *cron_jobs(settings)]
    return max(job.timeout_s or settings.job_timeout for job in jobs)


def option(args: list[str], name: str) -> float | None:
    return float(args[args.index(name) + 1]) if name in args else None


@pytest.mark.parametrize("profile", list(PROFILES))
def test_the_worker_grace_period_covers_its_shutdown_and_its_wait_covers_its_longest_job(
    profile: str,
) -> None:
    rendered = render_profile(profile, *PROFILE_OVERRIDES.get(profile, []))
    deployments = rendered.kind("Deployment")
    workers = [d for d in deployments if component(d) == "worker"]
    if not workers:  # A profile without the worker must be one without any app.
        assert not APP_COMPONENTS & {component(d) for d in deployments}, profile
        return
    (worker,) = workers
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = worker_settings(container_env(rendered, container))
    grace = pod["terminationGracePeriodSeconds"]
    # The kubelet runs the preStop hook first; its time counts against the grace period.
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    # After SIGTERM, in order: readiness fails for the drain, uvicorn waits for requests in
    # flight, then the runner waits for running jobs (tripline_common.web.server, ArqRunner.stop).
    shutdown = (
        settings.shutdown_drain_seconds
        + settings.graceful_shutdown_timeout
        + settings.job_completion_wait
    )
    longest_job = longest_job_timeout(settings)

    assert settings.job_completion_wait >= longest_job, (
        f"{profile}: JOB_COMPLETION_WAIT {settings.job_completion_wait} s is shorter than the "
        f"longest job timeout {longest_job} s: a scale-in would cut jobs short"
    )
    assert grace >= pre_stop + shutdown + SHUTDOWN_MARGIN_SECONDS, (
        f"{profile}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain, request "
        f"and job waits {shutdown} + margin {SHUTDOWN_MARGIN_SECONDS}: the kubelet would SIGKILL"
    )
    # A supervisor in front of the worker (watchfiles, dev profile) kills it after its own
    # timeout: that timeout must cover the shutdown too, and end within the grace period.
    supervisor_kill = option(container["args"], "--sigint-timeout")
    if supervisor_kill is not None:
        assert supervisor_kill >= shutdown + SHUTDOWN_MARGIN_SECONDS, (profile, supervisor_kill)
        assert grace >= pre_stop + supervisor_kill, (profile, supervisor_kill)
