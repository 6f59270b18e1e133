"""deploy/: the systemd units pass systemd-analyze verify; install-pi.sh runs on Debian."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "deploy" / "systemd"
INSTALL = REPO / "deploy" / "install-pi.sh"
VENV_EXE = "/opt/spinesense/venv/bin/spinesense"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("name", ["spinesense-edge.service", "spinesense-collector.service"])
def test_units_pass_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze missing: `make test` installs the systemd package"
    text = (UNITS / name).read_text()
    assert f"ExecStart={VENV_EXE} " in text  # where install-pi.sh puts the venv
    # verify checks that ExecStart exists: point it at this checkout's entry point
    local = Path(sys.executable).parent / "spinesense"
    (tmp_path / name).write_text(text.replace(VENV_EXE, str(local)))
    res = subprocess.run([exe, "verify", str(tmp_path / name)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


def test_edge_unit_is_a_watched_unprivileged_hardened_notify_service() -> None:
    svc = _unit("spinesense-edge.service")["Service"]
    assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0
    assert svc["Restart"] == "always"
    assert svc["User"] == "spinesense" and set(svc["SupplementaryGroups"].split()) == {
        "i2c", "gpio"}
    assert svc["ProtectSystem"] == "strict" and svc["NoNewPrivileges"] == "yes"
    assert svc["CapabilityBoundingSet"] == ""
    assert "--log-format json" in svc["ExecStart"]
    assert svc["StateDirectory"] == "spinesense"


def _fake_root(root: Path) -> Path:
    """A minimal Pi image: account files for useradd --prefix, and a config.txt."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "group").write_text("root:x:0:\ni2c:x:994:\n")
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc" / "gshadow").write_text("root:*::\ni2c:!::\n")
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "config.txt").write_text(
        "[all]\n#dtparam=i2c_arm=off\ndtparam=audio=on\n")
    return root


def _install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "LC_ALL": "C"})


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_install_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "root")
    before = _tree(root)
    res = _install("--dry-run", "--root", str(root), "--skip-pip")
    assert res.returncode == 0, res.stderr
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert f"install-pi: {step}" in res.stdout
    assert "groupadd --prefix" in res.stdout and "gpio" in res.stdout
    assert "i2c" not in res.stdout.split("groupadd")[1].split("\n")[0]  # i2c exists already
    assert "useradd --prefix" in res.stdout and "python3 -m venv" in res.stdout
    assert "systemctl --root=" in res.stdout
    assert _tree(root) == before


def test_install_into_a_root_is_complete_and_idempotent(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "root")
    res = _install("--root", str(root), "--skip-pip", "--collector")
    assert res.returncode == 0, res.stdout + res.stderr
    passwd = (root / "etc" / "passwd").read_text()
    assert "spinesense:" in passwd and "/usr/sbin/nologin" in passwd
    groups = {line.split(":")[0]: line.split(":")[3]
              for line in (root / "etc" / "group").read_text().splitlines()}
    assert "spinesense" in groups["i2c"].split(",") and "spinesense" in groups["gpio"]
    assert (root / "opt/spinesense/venv/bin/python").exists()
    cfg = root / "etc/spinesense/spinesense.toml"
    from spinesense.config import load
    loaded = load(cfg)
    assert loaded.device.state_dir == "/var/lib/spinesense"
    assert (root / "var/lib/spinesense").is_dir()
    config_txt = (root / "boot/firmware/config.txt").read_text()
    assert "dtparam=i2c_arm=on" in config_txt and "i2c_arm=off" not in config_txt
    assert "dtparam=audio=on" in config_txt
    assert (root / "etc/modules-load.d/spinesense-i2c.conf").read_text() == "i2c-dev\n"
    for unit in ("spinesense-edge.service", "spinesense-collector.service"):
        installed = root / "etc/systemd/system" / unit
        assert installed.read_bytes() == (UNITS / unit).read_bytes()
        assert (root / "etc/systemd/system/multi-user.target.wants" / unit).is_symlink()

    cfg.write_text(cfg.read_text().replace('host = "localhost"', 'host = "broker.lan"'))
    before = _tree(root)
    again = _install("--root", str(root), "--skip-pip", "--collector")
    assert again.returncode == 0, again.stderr
    assert "nothing to do: already installed" in again.stdout
    assert "\n+ " not in again.stdout  # no command ran
    assert _tree(root) == before  # the edited config is kept, nothing duplicated
    assert config_txt.count("i2c_arm") == 1


def test_install_refuses_unknown_options_and_missing_roots(tmp_path: Path) -> None:
    res = _install("--frobnicate")
    assert res.returncode == 2 and "unknown option --frobnicate" in res.stderr
    res = _install("--root", str(tmp_path / "missing"))
    assert res.returncode == 1 and "does not exist" in res.stderr
