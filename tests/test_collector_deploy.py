"""deploy/: the compose file parses, everything it mounts or builds from exists in the
repository, and the configs it mounts agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from spinesense.config import load

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


def services() -> dict:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict) and doc.get("services"), "compose.yaml has no services"
    return doc["services"]


def bind_mounts(svc: dict) -> list[tuple[Path, str]]:
    out = []
    for vol in svc.get("volumes", []):
        src, target = (vol["source"], vol["target"]) if isinstance(vol, dict) else \
            vol.split(":")[:2]
        if src.startswith((".", "/")):
            out.append(((DEPLOY / src).resolve(), target))
    return out


def test_compose_parses_and_has_the_server_side():
    assert {"mosquitto", "influxdb", "grafana", "collector"} <= set(services())


def test_every_mounted_file_and_build_input_exists():
    checked = 0
    for name, svc in services().items():
        for src, _target in bind_mounts(svc):
            assert src.exists(), f"service {name} mounts {src}, which is not in the repo"
            checked += 1
        build = svc.get("build")
        if build:
            ctx = (DEPLOY / build["context"]).resolve()
            dockerfile = ctx / build["dockerfile"]
            assert dockerfile.exists(), dockerfile
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    for item in line.split()[1:-1]:
                        assert (ctx / item).exists(), f"{dockerfile.name} copies missing {item}"
    assert checked >= 7


def test_mosquitto_config_references_only_mounted_paths():
    mounts = dict((t, s) for s, t in bind_mounts(services()["mosquitto"]))
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    paths = re.findall(r"^(?:password_file|acl_file|cafile|certfile|keyfile)\s+(\S+)", conf,
                       flags=re.M)
    assert len(paths) == 5
    for path in paths:
        assert any(path == t or path.startswith(t.rstrip("/") + "/") for t in mounts), \
            f"mosquitto.conf needs {path}, which compose does not mount"
    assert "allow_anonymous false" in conf


def test_collector_config_is_valid_and_matches_the_acl(monkeypatch):
    monkeypatch.setenv("SPINESENSE_MQTT_PASSWORD", "x")
    cfg = load(DEPLOY / "collector.toml")
    assert cfg.influx.api == "v2" and cfg.collector.group
    acl = (DEPLOY / "mosquitto" / "acl").read_text()
    assert f"user {cfg.mqtt.username}" in acl
    assert f"topic write {cfg.collector.dead_letter_topic}" in acl
    grafana = services()["grafana"]
    targets = {t for _s, t in bind_mounts(grafana)}
    assert "/etc/grafana/provisioning/datasources" in {t.split(":")[0] for t in targets}
    provider = yaml.safe_load((DEPLOY.parent / "dashboards" / "provisioning" / "dashboards"
                               / "spinesense.yaml").read_text())
    dash_path = provider["providers"][0]["options"]["path"]
    assert dash_path in targets, "Grafana's dashboard provider points at an unmounted path"
