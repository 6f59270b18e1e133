"""A bad config fails at start with one line naming the key, the problem and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spinesense.config import Config, ConfigError, from_dict, load
from spinesense.config_render import to_toml


def _check(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    return subprocess.run([sys.executable, "-m", "spinesense", "config", "check", str(cfg)],
                          capture_output=True, text=True, timeout=60)


def test_defaults_match_design_a3() -> None:
    cfg = load(None)
    assert (cfg.slouch.threshold_deg, cfg.slouch.delay_s, cfg.slouch.release_deg) == (15, 5, 12)
    assert (cfg.sitting.limit_min, cfg.sitting.break_s, cfg.sitting.repeat_min) == (30, 60, 10)
    assert cfg.metrics.interval_s == 10


def test_typo_names_the_key_and_suggests_the_fix(tmp_path: Path) -> None:
    res = _check(tmp_path, "[slouch]\nthreshhold_deg = 20\n")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "slouch.threshhold_deg" in lines[0] and "did you mean 'threshold_deg'" in lines[0]


def test_unknown_section(tmp_path: Path) -> None:
    res = _check(tmp_path, "[slouchh]\nthreshold_deg = 20\n")
    assert res.returncode == 2 and "did you mean 'slouch'" in res.stderr


def test_negative_threshold_says_what_is_allowed(tmp_path: Path) -> None:
    res = _check(tmp_path, "[slouch]\nthreshold_deg = -5\n")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "slouch.threshold_deg" in res.stderr and "must be > 0.0" in res.stderr


def test_missing_file(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "spinesense", "config", "check",
                          str(tmp_path / "absent.toml")], capture_output=True, text=True)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "config file not found" in res.stderr and "absent.toml" in res.stderr


def test_good_file_passes(tmp_path: Path) -> None:
    res = _check(tmp_path, "[slouch]\nthreshold_deg = 20\nrelease_deg = 16\n")
    assert res.returncode == 0, res.stderr
    assert "ok" in res.stdout


@pytest.mark.parametrize(("data", "fragment"), [
    ({"slouch": {"delay_s": "5"}}, "slouch.delay_s: '5' is str; expected a number"),
    ({"haptics": {"enabled": 1}}, "haptics.enabled: 1 is int; expected true or false"),
    ({"sensor": {"chip": "bmi160"}}, "allowed: auto, mpu6050"),
    ({"sensor": {"rate_hz": float("nan")}}, "not finite"),
    ({"slouch": {"threshold_deg": 10.0}}, "slouch.release_deg: 12.0 is not below"),
    ({"device": {"id": "a/b"}}, "device.id"),
    ({"mqtt": "x"}, "mqtt: 'x' is not a table"),
])
def test_bad_values(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as exc:
        from_dict(data)
    assert fragment in str(exc.value)


def test_ints_are_accepted_for_floats() -> None:
    assert from_dict({"slouch": {"delay_s": 7}}).slouch.delay_s == 7.0


def test_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINESENSE_INFLUX_TOKEN", "tok-from-env")
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[mqtt]\npassword_file = "{pw}"\n')
    cfg = load(cfg_file)
    assert cfg.influx.token == "tok-from-env"
    assert cfg.mqtt.password == "s3cret"
    assert "s3cret" not in to_toml(cfg) and "tok-from-env" not in to_toml(cfg)


def test_unreadable_secret_file_names_the_key(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[mqtt]\npassword_file = "{tmp_path}/nope"\n')
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: cannot read"):
        load(cfg_file)


def test_show_output_round_trips(tmp_path: Path) -> None:
    """`config show` prints TOML that loads back to the same config."""
    out = tmp_path / "shown.toml"
    out.write_text(to_toml(Config(), redact=False))
    assert load(out) == Config()


def test_config_reference_is_in_sync() -> None:
    """docs/config.md is generated from the schema; regenerate it when a key changes."""
    from spinesense.config_render import to_markdown
    doc = Path(__file__).parent.parent / "docs" / "config.md"
    assert doc.read_text() == to_markdown(), \
        "docs/config.md is stale: run `python -m spinesense.config_render > docs/config.md`"
