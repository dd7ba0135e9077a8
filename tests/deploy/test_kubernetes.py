"""k8s/: every overlay builds, passes strict schema validation, and holds what production needs."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError, latest_version
from redis.connection import parse_url

from api.app import create_app
from ccfleet.main import app as ccfleet_app
from shared.broker import redis_keys
from shared.settings import Settings
from tests.deploy.manifests import (
    K8S,
    OVERLAYS,
    Manifest,
    config_map_value,
    env_values,
    kustomize,
    of_kind,
    one,
    only_container,
    pod_spec,
    redis_server_args,
    workloads,
)

# One process builds the overlays (the session fixture built_overlays) for both modules.
pytestmark = pytest.mark.xdist_group("kustomize")

DEFAULTS = Settings()
MIB = 1024 * 1024
# docs/measured-facts.md §1: a CLI run peaks near 190 MB; an idle worker process held ~60 MB.
CLI_SLOT_BYTES = 190 * MIB
WORKER_BASE_BYTES = 64 * MIB
# What the Redis URL of every pod is built from (Secret ccfleet-redis, key password).
REDIS_URL = "redis://:$(REDIS_PASSWORD)@ccfleet-redis:6379/0"
SENTINEL_PORT = 26379


@pytest.fixture(params=OVERLAYS)
def overlay(
    request: pytest.FixtureRequest, built_overlays: dict[str, list[Manifest]]
) -> list[Manifest]:
    return built_overlays[request.param]


@pytest.fixture
def production(built_overlays: dict[str, list[Manifest]]) -> list[Manifest]:
    return built_overlays["production"]


def _workers(manifests: list[Manifest]) -> list[Manifest]:
    return of_kind(manifests, "Deployment", "worker")


def _api(manifests: list[Manifest]) -> Manifest:
    return one(manifests, "Deployment", "ccfleet-api")


def _bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "": 1}
    match = re.fullmatch(r"(\d+)([KMG]i)?", quantity)
    assert match, f"unexpected quantity {quantity}"
    return int(match.group(1)) * units[match.group(2) or ""]


# --- building and schemas ---------------------------------------------------------------


def test_every_overlay_builds_into_the_ccfleet_namespace(overlay: list[Manifest]) -> None:
    assert one(overlay, "Namespace", "ccfleet")
    for manifest in overlay:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"].get("namespace") == "ccfleet", manifest["metadata"]


def test_every_core_object_passes_strict_schema_validation(overlay: list[Manifest]) -> None:
    # Kubernetes 1.37's schemas, bundled with kubernetes-validate; a kind without a schema
    # raises SchemaNotFoundError, so only KEDA's CRD is left out (checked below).
    version = latest_version()
    for manifest in overlay:
        if manifest["apiVersion"] != "keda.sh/v1alpha1":
            kubernetes_validate.validate(manifest, version, strict=True)


def test_strict_schema_validation_rejects_a_misspelt_field(production: list[Manifest]) -> None:
    api = copy.deepcopy(_api(production))
    only_container(api)["readinesProbe"] = {"httpGet": {"path": "/ready", "port": "http"}}
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(api, latest_version(), strict=True)


# --- KEDA ---------------------------------------------------------------------------------

# KEDA's ScaledObject specification (keda.sh/docs/2.18/reference/scaledobject-spec/).
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
SCALE_TARGET_REF = {"apiVersion", "kind", "name", "envSourceContainerName"}
TRIGGER = {"type", "metadata", "name", "useCachedMetrics", "authenticationRef", "metricType"}
# Its `redis` trigger (the "Redis Lists" scaler, keda.sh/docs/2.16/scalers/redis-lists/).
REDIS_TRIGGER_METADATA = {
    "address",
    "host",
    "port",
    "usernameFromEnv",
    "passwordFromEnv",
    "listName",
    "listLength",
    "activationListLength",
    "enableTLS",
    "unsafeSsl",
    "databaseIndex",
    "addressFromEnv",
    "hostFromEnv",
    "portFromEnv",
}


def test_the_scaled_object_uses_only_documented_keda_fields(production: list[Manifest]) -> None:
    scaled_objects = of_kind(production, "ScaledObject")
    assert scaled_objects
    for scaled in scaled_objects:
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        spec = scaled["spec"]
        assert set(spec) <= SCALED_OBJECT_SPEC
        assert set(spec["scaleTargetRef"]) <= SCALE_TARGET_REF
        assert "name" in spec["scaleTargetRef"]
        for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
            assert isinstance(spec.get(field, 0), int), field
        for trigger in spec["triggers"]:
            assert set(trigger) <= TRIGGER
            assert trigger["type"] == "redis"
            metadata = trigger["metadata"]
            assert set(metadata) <= REDIS_TRIGGER_METADATA
            assert {"listName", "listLength"} <= set(metadata)
            # The CRD holds trigger metadata as a map of strings.
            assert all(isinstance(value, str) for value in metadata.values()), metadata


def test_batch_workers_scale_to_zero_on_the_batch_lane_with_the_redis_password(
    production: list[Manifest],
) -> None:
    for scaled in of_kind(production, "ScaledObject"):
        spec = scaled["spec"]
        target = one(production, "Deployment", spec["scaleTargetRef"]["name"])
        assert target["metadata"]["labels"]["ccfleet/lane"] == "batch"
        assert "replicas" not in target["spec"], "a fixed count would fight KEDA on each apply"
        assert spec["minReplicaCount"] == 0
        assert spec["maxReplicaCount"] >= 1
        [trigger] = spec["triggers"]
        metadata = trigger["metadata"]
        assert metadata["listName"] == redis_keys.lane_waiting("batch")
        # KEDA runs in its own namespace: the Service's full name, its port, the pods' database.
        redis = one(production, "Service", "ccfleet-redis")
        assert metadata["address"] == (
            f"ccfleet-redis.{redis['metadata']['namespace']}.svc.cluster.local:"
            f"{redis['spec']['ports'][0]['port']}"
        )
        url = env_values(only_container(target))["CCFLEET_REDIS_URL"]
        assert metadata["databaseIndex"] == url.rsplit("/", 1)[1]
        password = env_values(only_container(target))[metadata["passwordFromEnv"]]
        assert password == {"secretKeyRef": {"name": "ccfleet-redis", "key": "password"}}


# --- front ends ---------------------------------------------------------------------------


def test_production_keeps_two_front_ends_through_load_and_disruptions(
    production: list[Manifest],
) -> None:
    api = _api(production)
    assert api["spec"].get("replicas", 2) >= 2
    [hpa] = of_kind(production, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ccfleet-api",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    pdb = one(production, "PodDisruptionBudget", "ccfleet-api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] >= 1


def test_front_ends_probe_health_for_liveness_and_ready_for_readiness(
    overlay: list[Manifest],
) -> None:
    routes = create_app(Settings()).openapi()["paths"]
    container = only_container(_api(overlay))
    port_names = {port["name"] for port in container["ports"]}
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in port_names
        assert path in routes


# --- workers ------------------------------------------------------------------------------


def test_every_worker_serves_one_account_with_its_own_secret(overlay: list[Manifest]) -> None:
    workers = _workers(overlay)
    assert workers
    for worker in workers:
        account = worker["metadata"]["labels"]["ccfleet/account"]
        env = env_values(only_container(worker))
        assert env["CCFLEET_ACCOUNT"] == account != "template"
        assert worker["metadata"]["name"].endswith(f"-{account}")
        assert env["CLAUDE_CODE_OAUTH_TOKEN"] == {
            "secretKeyRef": {"name": f"ccfleet-account-{account}", "key": "oauth-token"}
        }
    # No Deployment may select another one's pods.
    deployments = of_kind(overlay, "Deployment")
    for owner in deployments:
        selector = owner["spec"]["selector"]["matchLabels"].items()
        for other in deployments:
            if other is not owner:
                assert not selector <= other["spec"]["template"]["metadata"]["labels"].items()


def test_every_worker_is_started_only_once_check_cli_passes(overlay: list[Manifest]) -> None:
    commands = {command.name for command in ccfleet_app.registered_commands}
    for worker in _workers(overlay):
        probe = only_container(worker)["startupProbe"]
        command = probe["exec"]["command"]
        assert command[:2] == ["ccfleet", "check-cli"]
        assert command[1] in commands
        # Two CLI calls, each up to --timeout, plus Python's start.
        timeout_s = float(command[command.index("--timeout") + 1])
        assert probe["timeoutSeconds"] > 2 * timeout_s


def test_termination_grace_covers_the_drain_times(overlay: list[Manifest]) -> None:
    for worker in _workers(overlay):
        drain_s = float(
            config_map_value(overlay, worker, "CCFLEET_WORKER_DRAIN_S") or DEFAULTS.worker.drain_s
        )
        assert pod_spec(worker)["terminationGracePeriodSeconds"] >= drain_s + 30
    api = _api(overlay)
    drain_s = float(
        config_map_value(overlay, api, "CCFLEET_DRAIN_TIMEOUT_S") or DEFAULTS.api.drain_timeout_s
    )
    pre_stop = only_container(api)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod_spec(api)["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + drain_s


def test_worker_memory_is_sized_for_its_running_ready_and_resident_clis(
    overlay: list[Manifest],
) -> None:
    for worker in _workers(overlay):
        slots = int(
            config_map_value(overlay, worker, "CCFLEET_WORKER_SLOTS") or DEFAULTS.worker.slots
        )
        ready = int(
            config_map_value(overlay, worker, "CCFLEET_PREWARM_CLIS") or DEFAULTS.prewarm.clis
        )
        resident = int(  # a resident CLI holds about as much as a ready one
            config_map_value(overlay, worker, "CCFLEET_RESIDENT_MAX") or DEFAULTS.resident.max
        )
        resources = only_container(worker)["resources"]
        request = _bytes(resources["requests"]["memory"])
        assert request >= WORKER_BASE_BYTES + CLI_SLOT_BYTES * (slots + ready + resident)
        assert _bytes(resources["limits"]["memory"]) >= request


def test_every_container_has_memory_requests_and_limits(overlay: list[Manifest]) -> None:
    for workload in workloads(overlay):
        for container in pod_spec(workload)["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), workload["metadata"]["name"]
            assert "memory" in resources["limits"], workload["metadata"]["name"]


def test_every_pod_runs_non_root_on_a_read_only_root_without_a_token(
    overlay: list[Manifest],
) -> None:
    for workload in workloads(overlay):
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
    namespace = one(overlay, "Namespace", "ccfleet")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_workers_write_only_to_empty_dirs(overlay: list[Manifest]) -> None:
    dockerfile = (K8S / "Dockerfile").read_text()
    image_home = re.search(r"\bHOME=(\S+)", dockerfile)
    assert image_home, "the image sets HOME"
    home = image_home.group(1)
    for worker in _workers(overlay):
        container = only_container(worker)
        work_root = env_values(container)["CCFLEET_WORK_ROOT"]
        volumes = {v["name"]: v for v in pod_spec(worker)["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        for path in (home, "/tmp", work_root):
            assert "emptyDir" in mounts[path], path


# --- Redis and secrets --------------------------------------------------------------------


def test_redis_is_a_stateful_set_with_aof_on_a_pvc_and_a_password(
    overlay: list[Manifest],
) -> None:
    redis = one(overlay, "StatefulSet", "ccfleet-redis")
    container = next(c for c in pod_spec(redis)["containers"] if c["name"] == "redis")
    args = redis_server_args(overlay, container)
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    env = env_values(container)
    secret = {"secretKeyRef": {"name": "ccfleet-redis", "key": "password"}}
    assert env["REDIS_PASSWORD"] == secret
    assert env["REDISCLI_AUTH"] == secret  # the readiness probe's redis-cli
    [claim] = redis["spec"]["volumeClaimTemplates"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert mount["mountPath"] == args[args.index("--dir") + 1]


def test_every_redis_url_carries_the_password_from_the_secret(overlay: list[Manifest]) -> None:
    clients = [_api(overlay), *_workers(overlay)]
    for client in clients:
        names = [e["name"] for e in only_container(client)["env"]]
        env = env_values(only_container(client))
        assert env["CCFLEET_REDIS_URL"] == REDIS_URL
        # $(VAR) is expanded only from variables defined earlier in the list.
        assert names.index("REDIS_PASSWORD") < names.index("CCFLEET_REDIS_URL")
        assert env["REDIS_PASSWORD"] == {
            "secretKeyRef": {"name": "ccfleet-redis", "key": "password"}
        }
    parsed = parse_url(REDIS_URL.replace("$(REDIS_PASSWORD)", "s3cret"))  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
    redis = one(overlay, "Service", "ccfleet-redis")
    assert (parsed["password"], parsed["host"], parsed["port"]) == (
        "s3cret",
        redis["metadata"]["name"],
        redis["spec"]["ports"][0]["port"],
    )


def test_no_secret_values_are_in_the_manifests(overlay: list[Manifest]) -> None:
    assert not of_kind(overlay, "Secret")
    accounts = {w["metadata"]["labels"]["ccfleet/account"] for w in _workers(overlay)}
    expected = {"ccfleet-redis", "ccfleet-auth"} | {
        f"ccfleet-account-{account}" for account in accounts
    }
    referenced = set(re.findall(r"secretKeyRef': \{[^}]*'name': '([^']+)'", str(overlay)))
    assert referenced == expected
    for path in K8S.rglob("*.yaml"):
        assert not re.search(r"sk-ant-\w", path.read_text()), path


# --- network ------------------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _pod_labels(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    return {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"]
        for w in workloads(manifests)
    }


def _policies_for(manifests: list[Manifest], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        p["spec"]
        for p in of_kind(manifests, "NetworkPolicy")
        if _selects(p["spec"]["podSelector"], labels)
    ]


def _in_namespace(peer: dict[str, Any], namespace: str) -> bool:
    labels: dict[str, str] | None = peer.get("namespaceSelector", {}).get("matchLabels")
    return labels == {"kubernetes.io/metadata.name": namespace}


def test_every_pod_starts_from_a_default_deny(overlay: list[Manifest]) -> None:
    deny = one(overlay, "NetworkPolicy", "ccfleet-default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_redis_is_reached_only_by_front_ends_and_workers(overlay: list[Manifest]) -> None:
    pods = _pod_labels(overlay)
    redis = pods["ccfleet-redis"]
    admitted: set[str] = set()
    for policy in _policies_for(overlay, redis):
        for rule in policy.get("egress", []):  # with sentinels: DNS and each other
            for peer in rule["to"]:
                assert _in_namespace(peer, "kube-system") or _selects(peer["podSelector"], redis)
        for rule in policy.get("ingress", []):
            assert [p["port"] for p in rule["ports"]] in ([6379], [6379, SENTINEL_PORT])
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    # Only KEDA's operator, which reads the batch lane's depth (production).
                    assert _in_namespace(peer, "keda")
                    assert peer["podSelector"] == {"matchLabels": {"app": "keda-operator"}}
                    assert of_kind(overlay, "ScaledObject")
                    continue
                matched = {n for n, labels in pods.items() if _selects(peer["podSelector"], labels)}
                admitted |= matched
    components = {pods[name]["app.kubernetes.io/component"] for name in admitted}
    assert components - {"redis"} == {"api", "worker"}  # redis: its own replicas, sentinels
    assert {n for n in pods if pods[n]["app.kubernetes.io/component"] == "worker"} <= admitted


def test_front_ends_are_reached_only_from_the_ingress_controller(overlay: list[Manifest]) -> None:
    api = _pod_labels(overlay)["ccfleet-api"]
    rules = [rule for policy in _policies_for(overlay, api) for rule in policy.get("ingress", [])]
    assert rules
    for rule in rules:
        assert [p["port"] for p in rule["ports"]] == [8080]
        assert all(_in_namespace(peer, "ingress-nginx") for peer in rule["from"])
        assert all("podSelector" not in peer or peer["podSelector"] for peer in rule["from"])


def test_workers_reach_only_dns_redis_and_https(overlay: list[Manifest]) -> None:
    pods = _pod_labels(overlay)
    for name, labels in pods.items():
        if labels["app.kubernetes.io/component"] != "worker":
            continue
        policies = _policies_for(overlay, labels)
        assert all(not policy.get("ingress") for policy in policies), "nothing reaches a worker"
        allowed = set()
        for policy in policies:
            for rule in policy.get("egress", []):
                for port in rule["ports"]:
                    allowed.add((port["protocol"], port["port"]))
                    if port["port"] in (6379, SENTINEL_PORT):
                        for peer in rule["to"]:
                            reached = [
                                n for n, pl in pods.items() if _selects(peer["podSelector"], pl)
                            ]
                            assert reached == ["ccfleet-redis"]
                    if port["port"] == 443:
                        assert all(set(peer) == {"ipBlock"} for peer in rule["to"])
                    if port["port"] == 53:
                        assert all(_in_namespace(p, "kube-system") for p in rule["to"])
        allowed.discard(("TCP", SENTINEL_PORT))  # where Redis runs with Sentinel
        assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 443)}, name


def test_the_ingress_relays_sse_unbuffered_with_long_timeouts(production: list[Manifest]) -> None:
    [ingress] = of_kind(production, "Ingress")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "proxy-buffering"] == "off"
    api = _api(production)
    longest_silence_s = (
        float(config_map_value(production, api, "CCFLEET_JOB_TIMEOUT_S") or DEFAULTS.jobs.timeout_s)
        + DEFAULTS.queue.interactive_max_wait_s
    )
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert float(notes[prefix + timeout]) >= longest_silence_s
    assert (
        _bytes(notes[prefix + "proxy-body-size"].replace("m", "Mi")) >= DEFAULTS.api.max_body_bytes
    )
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = one(production, "Service", backend["name"])
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


# --- dev, and adding an account -----------------------------------------------------------


def test_dev_runs_one_redis_one_front_end_and_one_worker(
    built_overlays: dict[str, list[Manifest]],
) -> None:
    dev = built_overlays["dev"]
    assert one(dev, "StatefulSet", "ccfleet-redis")["spec"]["replicas"] == 1
    assert "CCFLEET_REDIS_SENTINELS" not in one(dev, "ConfigMap", "ccfleet-config")["data"]
    assert _api(dev)["spec"]["replicas"] == 1
    [worker] = _workers(dev)
    assert worker["spec"]["replicas"] == 1
    # Nothing that needs KEDA or an ingress controller.
    assert not of_kind(dev, "ScaledObject") and not of_kind(dev, "Ingress")


@pytest.mark.parametrize("name", OVERLAYS)
def test_adding_an_account_is_one_copied_directory(tmp_path: Path, name: str) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    accounts = k8s / "overlays" / name / "accounts"
    new = accounts / "bob"
    new.mkdir()
    template = (accounts / "primary" / "kustomization.yaml").read_text()
    (new / "kustomization.yaml").write_text(template.replace("primary", "bob"))
    overlay_file = k8s / "overlays" / name / "kustomization.yaml"
    kustomization = yaml.safe_load(overlay_file.read_text())
    kustomization["resources"].append("accounts/bob")
    overlay_file.write_text(yaml.safe_dump(kustomization))

    built = kustomize(k8s / "overlays" / name)
    by_account: dict[str, list[str]] = {}
    for worker in _workers(built):
        env = env_values(only_container(worker))
        by_account.setdefault(env["CCFLEET_ACCOUNT"], []).append(worker["metadata"]["name"])
        assert env["CLAUDE_CODE_OAUTH_TOKEN"]["secretKeyRef"]["name"] == (
            f"ccfleet-account-{env['CCFLEET_ACCOUNT']}"
        )
    expected = (
        ["ccfleet-worker-batch-{}", "ccfleet-worker-{}"]
        if name == "production"
        else ["ccfleet-worker-{}"]
    )
    for account in ("primary", "bob"):
        assert sorted(by_account[account]) == [n.format(account) for n in expected]
    targets = {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(built, "ScaledObject")}
    assert targets == (
        {"ccfleet-worker-batch-primary", "ccfleet-worker-batch-bob"}
        if name == "production"
        else set()
    )


def test_a_workers_metrics_once_turned_on_are_reachable_at_the_pods_address(
    overlay: list[Manifest],
) -> None:
    # The worker's default is loopback (least information); a scraper reaches a pod's address.
    assert DEFAULTS.worker.metrics_host == "127.0.0.1"
    for worker in _workers(overlay):
        assert env_values(only_container(worker))["CCFLEET_METRICS_HOST"] == "0.0.0.0"


def test_the_ingress_limits_each_client_address_below_a_front_ends_connection_cap(
    production: list[Manifest],
) -> None:
    [ingress] = of_kind(production, "Ingress")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    api = _api(production)
    cap = int(
        config_map_value(production, api, "CCFLEET_MAX_CONNECTIONS") or DEFAULTS.api.max_connections
    )
    assert 0 < int(notes[prefix + "limit-connections"]) < cap
    assert float(notes[prefix + "proxy-connect-timeout"]) <= DEFAULTS.api.header_timeout_s
