"""The deployment files agree with the code: Docker is not run here, so these checks read
the compose file, the Kubernetes manifests and the Dockerfile, and compare what they name
(services, replicas, health ports, settings, NATS configs) with tidydesk's own settings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tidydesk.common.settings import SECRETS, SERVICES, SETTINGS, Settings

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
MODULE = re.compile(r"tidydesk\.(\w+)$")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def _k8s() -> list[dict[str, Any]]:
    return [d for f in sorted(K8S.glob("*.yaml")) if f.name != "kustomization.yaml"
            for d in yaml.safe_load_all(f.read_text()) if d]


def _module(command: list[str]) -> str:
    """`python -m tidydesk.<service>` -> service."""
    assert command[:2] == ["python", "-m"], command
    found = MODULE.match(command[2])
    assert found, command
    return found.group(1)


def _health_port(env: dict[str, str], service: str) -> int:
    return Settings.from_env(env).health_port_of(service)


def test_compose_runs_two_instances_of_every_service_probed_on_its_health_port() -> None:
    instances: dict[str, int] = {}
    for name, spec in _compose()["services"].items():
        if "entrypoint" not in spec:
            continue
        service = _module(spec["entrypoint"])
        instances[service] = instances.get(service, 0) + 1
        env = {k: str(v) for k, v in spec["environment"].items()}
        assert env["TIDYDESK_REPLICAS"] == "3" and env["TIDYDESK_HEALTH_HOST"] == "0.0.0.0"
        probe = " ".join(spec["healthcheck"]["test"])
        assert f"127.0.0.1:{_health_port(env, service)}/readyz" in probe, name
        assert (ROOT / "tidydesk" / service / "__main__.py").exists(), name
    assert instances == dict.fromkeys(SERVICES, 2)


def test_compose_nats_nodes_use_the_cluster_confs_and_their_route_names() -> None:
    services = _compose()["services"]
    nodes = [n for n, s in services.items() if str(s.get("image", "")).startswith("nats:")]
    assert nodes == ["nats1", "nats2", "nats3"]
    for i, node in enumerate(nodes, 1):
        conf_file, _, mount = services[node]["volumes"][0].partition(":")
        conf = (ROOT / conf_file).read_text()
        assert conf_file == f"./deploy/nats/cluster/node{i}.conf"
        assert mount.startswith("/etc/nats/node.conf") and "jetstream" in conf
        assert "sync_interval" in conf and "/data/jetstream" in conf
        assert all(f"nats-route://{n}:6222" in conf for n in nodes)
    url = services["queue-1"]["environment"]["TIDYDESK_NATS_URL"]
    assert url == ",".join(f"nats://{n}:4222" for n in nodes)


def test_compose_takes_secrets_from_the_environment_never_literal_values() -> None:
    for name, spec in _compose()["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if key.startswith("TIDYDESK_"):
                assert key in SETTINGS, f"{name}: {key} is no setting"
            if key in SECRETS:
                assert str(value) == "${" + key + ":-}", (name, key, value)


def test_k8s_deployments_two_replicas_probes_on_the_health_port() -> None:
    docs = _k8s()
    config = next(d for d in docs if d["kind"] == "ConfigMap"
                  and d["metadata"]["name"] == "tidydesk-config")["data"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert sorted(deployments) == sorted(SERVICES)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] == 2
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert _module(container["command"]) == name
        assert container["image"] == _compose()["services"]["queue-1"]["image"]
        port = _health_port(config, name)
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        assert {"name": "health", "containerPort": port} in container["ports"]
        refs = [next(iter(e.values()))["name"] for e in container["envFrom"]]
        assert refs == ["tidydesk-config", "tidydesk-secrets"]
    assert config["TIDYDESK_REPLICAS"] == "3"
    assert all(k in SETTINGS for k in config), set(config) - set(SETTINGS)


def test_k8s_secret_names_settings_and_services_reach_smtp_and_http() -> None:
    docs = _k8s()
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["metadata"]["name"] == "tidydesk-secrets"
    keys = set(secret["stringData"])
    assert keys >= SECRETS, SECRETS - keys
    assert all(k in SETTINGS for k in keys if k.startswith("TIDYDESK_"))
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    ports = {d["metadata"]["name"]: {p["name"] for p in d["spec"]["template"]["spec"][
        "containers"][0]["ports"]} for d in docs if d["kind"] == "Deployment"}
    for name, app, port in (("tidydesk-smtp", "ingest", "smtp"),
                            ("tidydesk-http", "queue", "http")):
        assert services[name]["spec"]["selector"] == {"app": app}
        assert services[name]["spec"]["ports"][0]["targetPort"] == port
        assert port in ports[app]
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(f.name for f in K8S.glob("*.yaml")
                                    if f.name != "kustomization.yaml")


def test_k8s_nats_is_a_three_node_jetstream_statefulset() -> None:
    docs = _k8s()
    (nats,) = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "nats"]
    assert nats["spec"]["replicas"] == 3
    conf = next(d for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"] == "nats-config")["data"]["nats.conf"]
    assert "jetstream" in conf and "sync_interval" in conf
    assert all(f"nats-route://nats-{i}.nats:6222" in conf for i in range(3))


def test_dockerfile_installs_the_wheel_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"(?m)^FROM (\S+)", text) == ["python:3.12-slim"] * 2
    assert "pip wheel" in text and "pip install --no-cache-dir /wheels/*.whl" in text
    user = re.findall(r"(?m)^USER (\S+)", text)
    assert user and user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["tidydesk"]' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_every_manifest_into_the_tidydesk_namespace() -> None:
    built = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True,
                           timeout=60, check=True).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    assert len(docs) == len(_k8s())
    assert all(d["metadata"].get("namespace") == "tidydesk" for d in docs
               if d["kind"] != "Namespace")
