"""deploy/: the nginx configuration passes `nginx -t`; the compose file and the Kubernetes manifest hold together.

No Docker engine or Kubernetes cluster runs here: the compose file and the manifest are read as YAML and checked
for what a deployment needs (three replicas, the shared catalog, the master key from a secret, probes on the HTTP
port the configuration serves, a grace period longer than the drain); the gateway configurations they mount are
loaded by the gateway's own configuration loader.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from nexus_flight.catalog.config_file import load_config
from tests.operations.serving import DEPLOY, nginx_config

ROOT = DEPLOY.parent


def test_the_nginx_configuration_passes_nginx_t(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is missing: tests/install-servers.sh installs Debian's nginx-light")
    config = tmp_path / "nginx.conf"
    config.write_text(nginx_config(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], 1, tmp_path))
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    text = (DEPLOY / "nginx.conf").read_text()
    assert "grpc_pass grpc://nexus_flight;" in text and "client_max_body_size 0;" in text


def _gateway_settings(text: str, tmp_path: Path):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_config(path, env={}).server


def test_the_compose_file_runs_three_replicas_on_one_catalog_behind_nginx(tmp_path):
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"catalog", "gateway-1", "gateway-2", "gateway-3", "proxy"}
    settings = _gateway_settings((DEPLOY / "gateway.toml").read_text(), tmp_path)
    assert settings.auth.enabled and settings.http_port == 9090 and settings.catalog_url.startswith("postgresql")
    assert settings.limit_counts == "catalog"  # replicas share one budget per principal
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in ("gateway-1", "gateway-2", "gateway-3"):
        gateway = services[name]
        assert gateway["command"][:2] == ["nexus-flight", "serve"]
        assert "NEXUS_FLIGHT_MASTER_KEY" in gateway["environment"]
        assert gateway["environment"]["NEXUS_FLIGHT__SERVER__CATALOG_URL"].startswith("postgresql+psycopg://")
        assert "./gateway.toml:/etc/nexus-flight/gateway.toml:ro" in gateway["volumes"]
        assert "9090/readyz" in " ".join(gateway["healthcheck"]["test"])
        assert int(gateway["stop_grace_period"].rstrip("s")) > settings.drain_seconds
        assert (DEPLOY / gateway["build"]["context"] / "Dockerfile").exists()
        assert set(gateway["build"]["args"]["EXTRAS"].split(",")) <= set(extras)
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["proxy"]["volumes"]
    upstreams = {line.split()[1].split(":")[0] for line in (DEPLOY / "nginx.conf").read_text().splitlines()
                 if line.strip().startswith("server gateway-")}
    assert upstreams == {"gateway-1", "gateway-2", "gateway-3"}
    assert services["catalog"]["image"].startswith("postgres:")


def test_the_kubernetes_manifest_has_replicas_a_service_a_secret_and_probes(tmp_path):
    documents = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())}
    assert set(documents) == {"Secret", "ConfigMap", "Deployment", "Service"}
    for document in documents.values():
        assert document["apiVersion"] in ("v1", "apps/v1") and document["metadata"]["namespace"] == "nexus-flight"
    settings = _gateway_settings(documents["ConfigMap"]["data"]["gateway.toml"], tmp_path)
    assert settings.limit_counts == "catalog"
    secret = documents["Secret"]["stringData"]
    assert {"NEXUS_FLIGHT_MASTER_KEY", "NEXUS_FLIGHT__SERVER__CATALOG_URL"} <= set(secret)
    deployment = documents["Deployment"]["spec"]
    assert deployment["replicas"] == 3
    pod = deployment["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > settings.drain_seconds
    [container] = pod["containers"]
    assert container["args"][:2] == ["nexus-flight", "serve"]
    assert container["envFrom"] == [{"secretRef": {"name": documents["Secret"]["metadata"]["name"]}}]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == settings.http_port and ports["flight"] == settings.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    labels = deployment["template"]["metadata"]["labels"]
    assert deployment["selector"]["matchLabels"] == labels
    assert documents["Service"]["spec"]["selector"] == labels
    assert {p["targetPort"] for p in documents["Service"]["spec"]["ports"]} <= set(ports)
