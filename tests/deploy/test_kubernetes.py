"""deploy/kubernetes/: every manifest valid against Kubernetes' own schemas (kubernetes-validate
bundles them: no cluster, no network), and the manifests held to each other, to the image and to
the router: the config in the ConfigMap loads with the Secret's variables, probes hit real paths
on the config's port, and a stopping pod gets longer than its drain."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from router.config import Config, parse_config
from tests.deploy.artifacts import KUBE, dockerfile, drain_bound_s, kube_documents, kustomization, last, serves_get
from tests.deploy.test_dockerfile import CONFIG_IN_IMAGE, entry_command

# The oldest Kubernetes these manifests are meant for, and the newest the package knows.
VERSIONS = ("1.28.0", kubernetes_validate.latest_version())


def docs() -> dict[tuple[str, str], dict[str, Any]]:
    return kube_documents()


def router_pod() -> dict[str, Any]:
    spec: dict[str, Any] = docs()[("Deployment", "router")]["spec"]["template"]["spec"]
    return spec


def router_container() -> dict[str, Any]:
    [container] = router_pod()["containers"]
    assert isinstance(container, dict)
    return container


def secret_env() -> dict[str, str]:
    data: dict[str, str] = docs()[("Secret", "router-secrets")]["stringData"]
    return data


def config() -> Config:
    """The ConfigMap's config as a pod loads it: with the Secret's variables and nothing else."""
    text = docs()[("ConfigMap", "router-config")]["data"]["config.yaml"]
    return parse_config(yaml.safe_load(text), "configmap", env=secret_env())


def test_kustomization_lists_every_manifest():
    listed = set(kustomization()["resources"])
    present = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version):
    for (kind, name), doc in docs().items():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind}/{name} on Kubernetes {version}: {exc.message} at {list(exc.path)}")


def test_the_configmap_config_loads_with_the_secrets_variables():
    loaded = config()
    assert loaded.server.host == "0.0.0.0"
    assert loaded.state.backend == "redis"
    assert loaded.server.watch_config, "ConfigMap edits reach the pods without a restart"
    assert loaded.server.admin_token is not None
    assert all(p.api_key for p in loaded.providers), "provider keys come from the Secret"


def test_the_pod_takes_its_config_from_the_configmap_read_only_and_its_env_from_the_secret():
    container = router_container()
    assert container["args"] == entry_command()[1:], "the image's own CMD, spelled out"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in router_pod()["volumes"]}
    [config_mount] = [m for m in mounts.values() if "configMap" in volumes[m["name"]]]
    assert volumes[config_mount["name"]]["configMap"]["name"] == "router-config"
    assert config_mount["readOnly"] is True and "subPath" not in config_mount, "subPath would never update"
    assert f"{config_mount['mountPath']}/config.yaml" == CONFIG_IN_IMAGE
    assert container["envFrom"] == [{"secretRef": {"name": "router-secrets"}}]


def test_probes_hit_the_routers_health_paths_on_the_configs_port():
    container = router_container()
    [port] = container["ports"]
    assert port["containerPort"] == config().server.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": port["name"]}
    assert serves_get("/health/ready") and serves_get("/health/live")
    annotations = docs()[("Deployment", "router")]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert serves_get(annotations["prometheus.io/path"])


def test_the_grace_period_covers_prestop_and_the_whole_drain():
    pre_stop = router_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = router_pod()["terminationGracePeriodSeconds"]
    assert grace > float(pre_stop[1]) + drain_bound_s(config()) + 2


def test_pods_run_as_the_images_non_root_user_with_a_read_only_root():
    pod, container = router_pod(), router_container()
    uid = last(dockerfile()[-1], "USER").args.split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert config().ledger.path.rsplit("/", 1)[0] in writable and "/tmp" in writable
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]


def test_the_service_and_the_budget_select_the_router_pods():
    deployment = docs()[("Deployment", "router")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = docs()[("Service", "router")]["spec"]
    assert service["selector"].items() <= labels.items()
    [port] = service["ports"]
    assert port["targetPort"] == router_container()["ports"][0]["name"]
    budget = docs()[("PodDisruptionBudget", "router")]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["minAvailable"] == 1
    redis_labels = docs()[("Deployment", "redis")]["spec"]["template"]["metadata"]["labels"]
    assert not service["selector"].items() <= redis_labels.items(), "Redis is not a router endpoint"


def test_redis_is_the_configs_state_url_with_the_secrets_password():
    url = urlsplit(config().state.url or "")
    service = docs()[("Service", url.hostname or "")]["spec"]
    [port] = service["ports"]
    assert port["port"] == url.port
    redis = docs()[("Deployment", "redis")]["spec"]["template"]["spec"]
    [container] = redis["containers"]
    assert (
        service["selector"].items() <= docs()[("Deployment", "redis")]["spec"]["template"]["metadata"]["labels"].items()
    )
    assert [p["containerPort"] for p in container["ports"]] == [url.port]
    args = container["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["REDIS_PASSWORD"] == {"name": "router-secrets", "key": "REDIS_PASSWORD"}
    assert env["REDISCLI_AUTH"] == env["REDIS_PASSWORD"], "the probes' redis-cli authenticates"
    assert url.password == secret_env()["REDIS_PASSWORD"]
