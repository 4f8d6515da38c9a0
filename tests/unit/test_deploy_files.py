"""The workflow, compose files and Kubernetes manifests agree with each other and with Toshi.

Their syntax and schemas are checked by their own validators in ``scripts/test`` (the GitHub
workflow and compose-spec schemas through check-jsonschema, the Kubernetes schemas through
kubernetes-validate, yamllint for all). What no schema knows is checked here: that the replicas
point at every member of the replica set that is initiated, that the proxy reaches every
replica, that probes ask Toshi's real health route on a declared port, and that the workflow
runs test directories that exist with a MongoDB URL set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from broker.app import create_app
from broker.settings import Settings
from broker.store.mongo import parse_url

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def initiated_members(script: str) -> list[str]:
    return re.findall(r'host: "([^"]+)"', script)


def test_toshi_serves_the_route_the_probes_ask_for() -> None:
    app = create_app(Settings(store="sqlite:////nonexistent"))
    assert "/health" in {getattr(route, "path", None) for route in app.routes}


def test_compose_replicas_share_the_initiated_replica_set_behind_the_proxy() -> None:
    (compose,) = load_all(DEPLOY / "compose.mongodb.yml")
    services = compose["services"]
    replicas = sorted(name for name in services if name.startswith("toshi-"))
    assert len(replicas) >= 2
    mongos = sorted(name for name in services if re.fullmatch(r"mongo-\d+", name))
    init = services["mongo-init"]["entrypoint"][-1]
    assert sorted(initiated_members(init)) == [f"{name}:27017" for name in mongos]
    for name in replicas:
        service = services[name]
        hosts, database, options = parse_url(service["environment"]["TOSHI_STORE"])
        assert sorted(hosts) == [f"{m}:27017" for m in mongos] and database == "toshi"
        assert options["replicaset"] == "rs0" and "--replSet" in services[mongos[0]]["command"]
        assert service["hostname"] == name  # the MQTT client id's stable suffix
        assert "/health" in " ".join(service["healthcheck"]["test"])
        assert service["environment"]["TOSHI_MQTT__URL"] == "mqtt://mosquitto:1883"
    upstreams = re.findall(r"server (\S+):1026", (DEPLOY / "nginx.conf").read_text())
    assert sorted(upstreams) == replicas
    assert set(services["proxy"]["depends_on"]) == set(replicas)


def test_kubernetes_replicas_probe_health_and_reach_the_initiated_replica_set() -> None:
    resources = {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        for doc in load_all(path)
    }
    toshi = resources[("StatefulSet", "toshi")]
    assert toshi["spec"]["replicas"] >= 2
    assert resources[("Service", toshi["spec"]["serviceName"])]["spec"]["clusterIP"] == "None"
    (container,) = toshi["spec"]["template"]["spec"]["containers"]
    ports = {port["name"] for port in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/health" and check["port"] in ports, probe
    config = resources[("ConfigMap", container["envFrom"][0]["configMapRef"]["name"])]["data"]
    hosts, _, options = parse_url(config["TOSHI_STORE"])
    mongodb = resources[("StatefulSet", "mongodb")]
    members = [f"mongodb-{i}.{mongodb['spec']['serviceName']}:27017" for i in range(3)]
    assert mongodb["spec"]["replicas"] == 3 and sorted(hosts) == members
    assert options["replicaset"] == "rs0"
    init = resources[("Job", "mongodb-init")]["spec"]["template"]["spec"]["containers"][0]
    assert sorted(initiated_members(init["command"][-1])) == members
    assert config["TOSHI_MQTT__URL"].startswith("mqtt://mosquitto:")
    assert ("Service", "mosquitto") in resources


def test_the_workflow_runs_the_mongodb_tests_with_a_server() -> None:
    (workflow,) = load_all(ROOT / ".github" / "workflows" / "mongodb.yml")
    (job,) = workflow["jobs"].values()
    url = job["env"]["TOSHI_TEST_MONGODB_URL"]
    assert parse_url(url)[2]["replicaset"] == "rs0"
    commands = " ".join(step.get("run", "") for step in job["steps"])
    for directory in re.findall(r"pytest ((?:tests/\w+ ?)+)", commands)[0].split():
        assert (ROOT / directory).is_dir(), directory
    assert "--replSet rs0" in commands and "rs.initiate" in commands
