"""deploy/: the compose file parses, everything it mounts or builds from exists in the
repository, and the configs it mounts agree with each other."""

from __future__ import annotations

import os
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


def documented_commands() -> list[str]:
    """The shell block of docs/collector.md's "Deploying with compose" section."""
    doc = (DEPLOY.parent / "docs" / "collector.md").read_text()
    section = doc.split("## Deploying with compose", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_documented_deploy_commands_work_from_deploy_in_a_fresh_copy(tmp_path):
    """Run the documented commands (all but `docker compose`) in a copy of the repository's
    tracked deploy files: the secrets land where the broker reads them, and git sees
    nothing new to commit."""
    import shutil
    import subprocess

    root = DEPLOY.parent
    tracked = subprocess.run(["git", "ls-files", "deploy", ".gitignore"], cwd=root,
                             capture_output=True, text=True, check=True).stdout.split()
    copy = tmp_path / "repo"
    for rel in tracked:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, copy / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=m"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "deploy"]):
        subprocess.run([*git, *args], cwd=copy, check=True)
    commands = documented_commands()
    assert commands[0] == "cd deploy" and any("add-device.sh alice" in c for c in commands)
    script = "\n".join(c for c in commands if not c.startswith("docker "))
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=copy,
                         env={**os.environ, "EDITOR": "true"}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    secrets = copy / "deploy" / "mosquitto" / "secrets"
    users = [line.split(":")[0] for line in (secrets / "passwd").read_text().splitlines()]
    assert users == ["collector.spinesense", "alice"]
    assert (secrets / "certs" / "server.crt").exists() and (copy / "deploy" / ".env").exists()
    assert not (copy / "deploy" / "deploy").exists()
    assert "/etc/spinesense/spinesense.toml" in run.stdout + run.stderr
    assert "warning" not in run.stderr
    status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=all"],
                            cwd=copy, capture_output=True, text=True, check=True).stdout
    assert status == "", f"the deploy steps left files git would commit:\n{status}"
    # a second collector instance, added from elsewhere: its own account and ACL block
    other = subprocess.run(["bash", str(copy / "deploy" / "add-device.sh"), "--collector",
                            "b"], cwd=tmp_path, capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    assert 'username = "collector.b"' in other.stdout
    acl = (copy / "deploy" / "mosquitto" / "acl").read_text()
    block = acl.split("user collector.b\n", 1)[1]
    assert "topic read spinesense/+/events" in block and "topic read spinesense/+/metrics" in block


def test_add_device_refuses_bad_names_with_one_line(tmp_path):
    import subprocess

    for args in (["a/b"], ["--collector", "x y"], []):
        run = subprocess.run(["bash", str(DEPLOY / "add-device.sh"), "--passwd",
                              str(tmp_path / "p"), *args], capture_output=True, text=True)
        assert run.returncode == 2, (args, run.stderr)
        assert "add-device.sh:" in run.stderr.splitlines()[0]
    assert not (tmp_path / "p").exists()
