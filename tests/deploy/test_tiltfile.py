"""The Tiltfile, evaluated by a real Starlark interpreter (starlark-pyo3, Tilt's dialect with
top-level statements) against stubs of Tilt's API that keep Tilt's exact signatures; `helm()` and
`helm_resource` render the chart with the real Helm SDK. Then the graph is cross-checked: every
resource and dependency named exists, every image built is deployed, every synced path exists and
lands where the image installs the code, and only local clusters are allowed."""

# The stubs copy Tilt's API: its mutable defaults and camelCase names are deliberate.
# ruff: noqa: B006, N803

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import starlark as sl
import yaml
from chart_render import deep_merge, render

ROOT = Path(__file__).resolve().parents[2]
TRIGGER_MODE_AUTO, TRIGGER_MODE_MANUAL = 1, 2
LOCAL_CONTEXT = re.compile(r"^(kind-.+|k3d-.+|docker-desktop|rancher-desktop|orbstack|minikube)$")


def _set_path(values: dict, dotted: str, value: Any) -> dict:
    """`--set a.b.c=value`, as Helm applies it."""
    node = values
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return values


@dataclass
class Tilt:
    """What a Tiltfile asked Tilt to do, recorded by stubs with Tilt's own signatures."""

    images: dict[str, dict] = field(default_factory=dict)
    objects: list[dict] = field(default_factory=list)
    workloads: dict[str, dict] = field(default_factory=dict)  # resource name -> settings
    local: dict[str, dict] = field(default_factory=dict)
    releases: dict[str, dict] = field(default_factory=dict)
    contexts: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)

    # --- Tilt builtins (https://docs.tilt.dev/api.html), same parameter names and defaults ---
    def docker_build(
        self,
        ref,
        context,
        build_args={},
        dockerfile="Dockerfile",
        dockerfile_contents="",
        live_update=[],
        match_in_env_vars=False,
        ignore=[],
        only=[],
        entrypoint=[],
        target="",
        ssh="",
        network="",
        secret="",
        extra_tag="",
        container_args=None,
        cache_from=[],
        pull=False,
        platform="",
        env_vars={},
    ):
        assert ref not in self.images, f"image {ref} built twice"
        self.images[ref] = dict(
            context=context,
            build_args=dict(build_args),
            dockerfile=dockerfile,
            live_update=list(live_update),
            ignore=list(ignore),
            only=list(only),
            target=target,
        )

    def sync(self, local_path, remote_path):
        return ("sync", local_path, remote_path)

    def run(self, cmd, trigger=[], echo_off=False):
        return ("run", cmd, list(trigger))

    def fall_back_on(self, files):
        return ("fall_back_on", [files] if isinstance(files, str) else list(files))

    def link(self, url, name=""):
        return ("link", url, name)

    def helm(
        self,
        pathToChartDir,
        name="",
        namespace="",
        values=[],
        set=[],
        kube_version="",
        skip_crds=False,
    ):
        merged: dict = {}
        for path in [values] if isinstance(values, str) else values:
            merged = deep_merge(merged, yaml.safe_load((ROOT / path).read_text()) or {})
        for assignment in [set] if isinstance(set, str) else set:
            key, _, value = assignment.partition("=")
            _set_path(merged, key, value)
        assert (ROOT / pathToChartDir / "Chart.yaml").exists()
        return render(merged, release=name or "chart", namespace=namespace or "default").text()

    def k8s_yaml(self, yaml_, allow_duplicates=False):
        texts = [yaml_] if isinstance(yaml_, str) else list(yaml_)
        for text in texts:
            if "\n" not in text and (ROOT / text).exists():
                text = (ROOT / text).read_text()
            for doc in yaml.safe_load_all(text):
                if not doc:
                    continue
                self.objects.append(doc)
                if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"):
                    self.workloads[doc["metadata"]["name"]] = {
                        "object": doc,
                        "resource_deps": [],
                        "labels": [],
                    }

    def k8s_resource(
        self,
        workload="",
        new_name="",
        port_forwards=[],
        extra_pod_selectors=[],
        trigger_mode=TRIGGER_MODE_AUTO,
        resource_deps=[],
        objects=[],
        auto_init=True,
        pod_readiness="",
        links=[],
        labels=[],
        discovery_strategy="",
    ):
        assert workload in self.workloads, f"k8s_resource: no workload {workload!r}"
        settings = self.workloads.pop(workload)
        settings["resource_deps"] = settings["resource_deps"] + list(resource_deps)
        settings["labels"] = settings["labels"] + (
            [labels] if isinstance(labels, str) else list(labels)
        )
        settings["port_forwards"] = (
            [port_forwards] if isinstance(port_forwards, (str, int)) else list(port_forwards)
        )
        self.workloads[new_name or workload] = settings

    def local_resource(
        self,
        name,
        cmd="",
        deps=[],
        trigger_mode=TRIGGER_MODE_AUTO,
        resource_deps=[],
        ignore=[],
        auto_init=True,
        serve_cmd="",
        cmd_bat="",
        serve_cmd_bat="",
        allow_parallel=False,
        links=[],
        tags=[],
        env={},
        serve_env={},
        readiness_probe=None,
        dir="",
        serve_dir="",
        labels=[],
    ):
        assert name not in self.local, f"local_resource {name} twice"
        self.local[name] = dict(
            cmd=cmd,
            serve_cmd=serve_cmd,
            resource_deps=list(resource_deps),
            env=dict(env),
            links=list(links),
            labels=list(labels),
            trigger_mode=trigger_mode,
            auto_init=auto_init,
        )

    def allow_k8s_contexts(self, contexts):
        self.contexts += [contexts] if isinstance(contexts, str) else list(contexts)

    def version_settings(self, check_updates=True, constraint=""):
        assert constraint.startswith(">=")

    def watch_settings(self, ignore):
        for pattern in ignore:
            assert isinstance(pattern, str)

    def print_(self, *args, sep=" "):
        self.printed.append(sep.join(str(a) for a in args))

    # --- extensions: ext://helm_resource, ext://namespace (their published signatures) ---
    def helm_resource(
        self,
        name,
        chart,
        deps=[],
        release_name="",
        namespace=None,
        image_deps=None,
        image_keys=None,
        flags=None,
        uninstall_flags=None,
        image_selector="",
        container_selector="",
        live_update=None,
        resource_deps=None,
        labels=None,
        port_forwards=[],
        auto_init=True,
        pod_readiness="",
        update_dependencies=False,
        build_dependencies=False,
        links=[],
    ):
        image_deps, image_keys = list(image_deps or []), list(image_keys or [])
        assert len(image_deps) == len(image_keys), "image_deps and image_keys differ in length"
        self.releases[name] = dict(
            chart=chart,
            deps=list(deps),
            release=release_name or name,
            namespace=namespace,
            image_deps=image_deps,
            image_keys=image_keys,
            flags=list(flags or []),
            resource_deps=list(resource_deps or []),
            labels=list(labels or []),
        )

    def namespace_create(self, name, allow_duplicates=False, annotations=[], labels=[]):
        self.namespaces.append(name)

    # --- the resource graph ---
    @property
    def resources(self) -> dict[str, list[str]]:
        graph = {name: w["resource_deps"] for name, w in self.workloads.items()}
        graph.update({name: r["resource_deps"] for name, r in self.releases.items()})
        graph.update({name: r["resource_deps"] for name, r in self.local.items()})
        return graph

    def release_render(
        self, name: str, injected_registry: str = "localhost:5005", tag: str = "tilt-0123abcd"
    ):
        """The helm_resource's release as `helm upgrade --install` would render it, with the
        image keys set the way the extension's apply helper sets them."""
        release = self.releases[name]
        values: dict = {}
        flags = list(release["flags"])
        while flags:
            flag = flags.pop(0)
            if flag.startswith("--values=") or flag in ("-f", "--values"):
                path = flag.split("=", 1)[1] if "=" in flag else flags.pop(0)
                values = deep_merge(values, yaml.safe_load((ROOT / path).read_text()) or {})
            elif flag == "--set":
                key, _, value = flags.pop(0).partition("=")
                _set_path(values, key, value)
        for image, keys in zip(release["image_deps"], release["image_keys"], strict=True):
            registry_key, repository_key, tag_key = keys
            _set_path(values, registry_key, injected_registry)
            _set_path(values, repository_key, image)
            _set_path(values, tag_key, tag)
        return render(values, release=release["release"], namespace=release["namespace"])


def evaluate(tiltfile: Path) -> Tilt:
    tilt = Tilt()
    builtins = {
        name: getattr(tilt, name)
        for name in (
            "docker_build",
            "sync",
            "run",
            "fall_back_on",
            "link",
            "helm",
            "k8s_yaml",
            "k8s_resource",
            "local_resource",
            "allow_k8s_contexts",
            "version_settings",
            "watch_settings",
        )
    }
    builtins["print"] = tilt.print_
    extensions = {
        "ext://helm_resource": {"helm_resource": tilt.helm_resource},
        "ext://namespace": {"namespace_create": tilt.namespace_create},
    }
    dialect = sl.Dialect.extended()
    dialect.enable_top_level_stmt = True
    globals_ = sl.Globals.extended_by([sl.LibraryExtension.StructType, sl.LibraryExtension.Json])

    def module() -> sl.Module:
        m = sl.Module()
        for name, fn in builtins.items():
            m.add_callable(name, fn)
        m["TRIGGER_MODE_AUTO"], m["TRIGGER_MODE_MANUAL"] = TRIGGER_MODE_AUTO, TRIGGER_MODE_MANUAL
        return m

    def load(name: str) -> sl.FrozenModule:
        m = sl.Module()
        if name in extensions:
            for symbol, fn in extensions[name].items():
                m.add_callable(symbol, fn)
            return m.freeze()
        path = ROOT / name
        assert path.is_file(), f"load({name!r}): no such file"
        m = module()
        sl.eval(m, sl.parse(name, path.read_text(), dialect), globals_, sl.FileLoader(load))
        return m.freeze()

    sl.eval(
        module(),
        sl.parse(tiltfile.name, tiltfile.read_text(), dialect),
        globals_,
        sl.FileLoader(load),
    )
    return tilt


@pytest.fixture(scope="module")
def tilt() -> Tilt:
    return evaluate(ROOT / "Tiltfile")


def test_the_resource_graph_is_complete_and_ordered(tilt: Tilt) -> None:
    graph = tilt.resources
    for name, deps in graph.items():
        for dep in deps:
            assert dep in graph, f"{name} depends on unknown resource {dep}"
    assert {
        "postgres",
        "redis",
        "tripline",
        "api",
        "admin",
        "ingest",
        "worker",
        "seed",
        "helm-test",
    } <= set(graph)
    assert set(graph["tripline"]) == {"postgres", "redis"}
    for app in ("api", "admin", "ingest", "worker"):
        assert graph[app] == ["tripline"]
    # No cycles: a topological order exists.
    seen: set[str] = set()
    while len(seen) < len(graph):
        ready = {n for n, deps in graph.items() if n not in seen and set(deps) <= seen}
        assert ready, f"dependency cycle among {set(graph) - seen}"
        seen |= ready


def test_every_resource_has_a_label(tilt: Tilt) -> None:
    for name, settings in {**tilt.workloads, **tilt.releases, **tilt.local}.items():
        assert settings["labels"], f"{name} has no label"


def test_only_local_clusters_are_allowed(tilt: Tilt) -> None:
    assert tilt.contexts and all(LOCAL_CONTEXT.match(c) for c in tilt.contexts), tilt.contexts
    ctlptl = list(yaml.safe_load_all((ROOT / "deploy" / "ctlptl.yaml").read_text()))
    cluster = next(d for d in ctlptl if d["kind"] == "Cluster")
    assert f"kind-{cluster['kindV1Alpha4Cluster']['name']}" in tilt.contexts
    assert cluster["registry"] == next(d for d in ctlptl if d["kind"] == "Registry")["name"]


def test_images_are_built_from_the_dockerfile_and_each_is_deployed(tilt: Tilt) -> None:
    stages = re.findall(r"^FROM \S+ AS (\S+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    release = tilt.releases["tripline"]
    assert sorted(release["image_deps"]) == sorted(tilt.images)
    rendered = tilt.release_render("tripline")
    used = {
        c["image"]
        for d in rendered.kind("Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    for ref, image in tilt.images.items():
        assert (ROOT / image["dockerfile"]).is_file()
        assert image["target"] in stages
        service = image["build_args"]["SERVICE"]
        assert (ROOT / "services" / service / "pyproject.toml").is_file()
        for path in image["only"]:
            assert (ROOT / path).exists(), f"{ref}: context path {path} does not exist"
        assert f"localhost:5005/{ref}:tilt-0123abcd" in used, (
            f"{ref} is built but no Deployment runs it"
        )


def test_live_update_syncs_existing_code_to_where_the_image_and_watcher_have_it(tilt: Tilt) -> None:
    dev_args = render(yaml.safe_load((ROOT / "helm/tripline/values-dev.yaml").read_text()))
    watched = {
        d["metadata"]["name"].removeprefix("tripline-"): d["spec"]["template"]["spec"][
            "containers"
        ][0]["args"]
        for d in dev_args.kind("Deployment")
    }
    for ref, image in tilt.images.items():
        steps = image["live_update"]
        assert steps[0][0] == "fall_back_on", "fall_back_on must come first"
        for file in steps[0][1]:
            assert (ROOT / file).is_file(), f"{ref}: fall_back_on {file} does not exist"
        syncs = [s for s in steps if s[0] == "sync"]
        assert len(syncs) == 2
        service = image["build_args"]["SERVICE"]
        for _, local, remote in syncs:
            assert (ROOT / local / "__init__.py").is_file(), (
                f"{ref}: sync source {local} is not a package"
            )
            package = Path(local).name
            assert remote == f"/app/.venv/lib/python3.11/site-packages/{package}"
            assert remote in watched[service], f"{service}: watchfiles does not watch {remote}"


def test_the_release_installs_with_the_dev_profile_and_hooks(tilt: Tilt) -> None:
    release = tilt.releases["tripline"]
    assert (ROOT / release["chart"] / "Chart.yaml").is_file()
    for dep in release["deps"]:
        assert (ROOT / dep).exists()
    assert (
        "--values=helm/tripline/values-dev.yaml" in release["flags"]
        and "--wait" in release["flags"]
    )
    rendered = tilt.release_render("tripline")
    job = rendered.get("Job", "tripline-migrations")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    # --wait (above): the contract hook runs once every new pod is ready.
    contract = rendered.get("Job", "tripline-migrations-contract")
    assert contract["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert release["namespace"] in tilt.namespaces


def test_data_stores_come_from_the_chart_and_match_the_app_credentials(tilt: Tilt) -> None:
    images = {
        w["object"]["spec"]["template"]["spec"]["containers"][0]["image"].split(":")[0]
        for n, w in tilt.workloads.items()
        if n in ("postgres", "redis")
    }
    assert images == {"docker.io/library/postgres", "docker.io/library/redis"}
    secret = yaml.safe_load((ROOT / "helm/tripline/values-dev.yaml").read_text())["secrets"][
        "values"
    ]
    services = {o["metadata"]["name"] for o in tilt.objects if o["kind"] == "Service"}
    assert secret["databaseUrl"].split("@")[1].split(":")[0] in services
    assert secret["redisUrl"].split("//")[1].split(":")[0] in services
    seed_env = tilt.local["seed"]["env"]
    assert seed_env["DATABASE_URL"].split("@")[0] == secret["databaseUrl"].split("@")[0]
    assert (
        "15432" in seed_env["DATABASE_URL"]
        and "15432:5432" in tilt.workloads["postgres"]["port_forwards"]
    )
    assert (
        "16379" in seed_env["REDIS_URL"]
        and "16379:6379" in tilt.workloads["redis"]["port_forwards"]
    )


def test_port_forwards_reach_objects_the_release_creates(tilt: Tilt) -> None:
    rendered = tilt.release_render("tripline")
    for app in ("api", "admin", "ingest", "worker"):
        resource = tilt.local[app]
        script, _namespace, target, ports, ops_ports = resource["serve_cmd"]
        assert (ROOT / script).is_file() and shutil.which(str(ROOT / script))
        kind, name = target.split("/")
        local, remote = map(int, ports.split(":"))
        local_ops, remote_ops = map(int, ops_ports.split(":"))
        if kind == "svc":
            declared = {
                p["name"]: p["port"] for p in rendered.get("Service", name)["spec"]["ports"]
            }
        else:
            container = rendered.get("Deployment", name)["spec"]["template"]["spec"]["containers"][
                0
            ]
            declared = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert declared == {"http": remote, "ops": remote_ops}, (app, declared)
        assert any(f"http://localhost:{local}" in line for line in tilt.printed), "URL not printed"
        links = [link[1] for link in resource["links"]]
        assert f"http://localhost:{local_ops}/readyz" in links
        assert f"http://localhost:{local_ops}/metrics" in links
        if app != "worker":
            assert f"http://localhost:{local}/docs" in links
