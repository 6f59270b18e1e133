"""One TOML file configures every stage; this module is its schema, defaults and validation.

Each section is a dataclass. A field's metadata says what is allowed, so that a bad
key, type or value fails at start with the key's name, what was wrong and what is
allowed (see ``ConfigError``). Secrets never have to live in the TOML: each secret
key also reads from an environment variable or a ``*_file`` key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints


class ConfigError(ValueError):
    """A config problem, phrased as one line that names the key and the fix."""


def opt(default: Any, doc: str, *, lo: float | None = None, hi: float | None = None,
        choices: tuple[Any, ...] | None = None, lo_open: bool = False,
        secret_env: str | None = None) -> Any:
    """A config field with its documentation and allowed values."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open,
            "secret_env": secret_env}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DeviceConfig:
    id: str = opt("wearer1", "Device id: the MQTT topic segment and the InfluxDB `device` tag. "
                  "Letters, digits, '-' and '_' only.")
    state_dir: str = opt("~/.local/state/spinesense",
                         "Where calibration, applied thresholds and the spool live.")


@dataclass
class SensorConfig:
    bus: int = opt(1, "I2C bus number (/dev/i2c-N). Raspberry Pi header pins 3/5 are bus 1.",
                   lo=0, hi=255)
    chip: str = opt("auto", "IMU chip, or auto to probe by WHO_AM_I.",
                    choices=("auto", "mpu6050", "mpu6500", "mpu9250", "lsm6ds3", "lsm6dso",
                             "lsm6dsox", "ism330dhcx"))
    address: int = opt(0, "7-bit I2C address; 0 probes 0x68/0x69/0x6A/0x6B.", lo=0, hi=0x77)
    rate_hz: float = opt(100.0, "Output data rate in Hz (the chip's nearest supported rate).",
                         lo=12.5, hi=416.0)
    accel_range_g: int = opt(4, "Accelerometer full scale in g.", choices=(2, 4, 8, 16))
    gyro_range_dps: int = opt(500, "Gyroscope full scale in deg/s.",
                              choices=(125, 250, 500, 1000, 2000))
    dlpf_hz: float = opt(20.0, "Chip's digital low-pass bandwidth in Hz (nearest supported).",
                         lo=5.0, hi=400.0)
    use_gyro: bool = opt(True, "Read the gyroscope (false: accelerometer only).")
    mount: str = opt("back-out", "Which way the board's z axis points when it lies flat on "
                     "the upper back: back-out (away from the body), back-in (into the "
                     "body) or auto (learned from the data; until it is sure, a slouch is "
                     "judged on sagittal flexion either way, so a recline may buzz too). "
                     "Forward is the board normal's projection perpendicular to upright.",
                     choices=("back-out", "back-in", "auto"))
    read_interval_s: float = opt(0.25, "How often the FIFO is drained in one burst.",
                                 lo=0.01, hi=2.0)
    retries: int = opt(5, "Retries of a failed I2C transfer before the chip is re-initialised.",
                       lo=0, hi=100)


@dataclass
class PipelineConfig:
    gravity_cutoff_hz: float = opt(0.5, "Low-pass cutoff that separates gravity (posture) from "
                                   "movement.", lo=0.05, hi=5.0, lo_open=True)
    gap_s: float = opt(0.5, "A hole in the timestamps longer than this is a gap: filters "
                       "restart and no event spans it.", lo=0.05, hi=60.0)
    auto_calibrate: bool = opt(True, "Without a stored calibration, learn upright from the "
                               "first still, upright stretch of data.")
    flexion_cutoff_hz: float = opt(1.5, "Low-pass cutoff of the accelerometer's flexion angle "
                                   "(faster than gravity_cutoff_hz: less alert latency).",
                                   lo=0.1, hi=10.0)
    gyro_time_constant_s: float = opt(0.5, "Complementary filter: below this time scale the "
                                      "gyro leads the flexion estimate, above it the "
                                      "accelerometer.", lo=0.05, hi=60.0)
    calibration_wait_s: float = opt(600.0, "Finding upright in the data: if no still stretch "
                                    "comes within this long, use the mean direction, with "
                                    "low confidence (events wait until then).",
                                    lo=10.0, hi=86400.0)
    stale_deg: float = opt(20.0, "A first walk this far from the calibrated upright means "
                           "the calibration is wrong or the clip moved: report "
                           "calibration_stale and re-anchor upright on walking.",
                           lo=5.0, hi=90.0)


@dataclass
class SlouchConfig:
    threshold_deg: float = opt(15.0, "Forward flexion past upright that counts as slouching.",
                               lo=0.0, hi=90.0, lo_open=True)
    release_deg: float = opt(12.0, "Flexion below which a slouch ends (hysteresis). "
                             "Must be below threshold_deg.", lo=0.0, hi=90.0)
    delay_s: float = opt(5.0, "How long flexion must stay past the threshold before alerting.",
                         lo=0.0, hi=600.0)


@dataclass
class SittingConfig:
    limit_min: float = opt(30.0, "Continuous sedentary minutes that raise sitting_alert.",
                           lo=0.0, hi=1440.0, lo_open=True)
    break_s: float = opt(60.0, "Seconds of standing or walking that end a sedentary bout.",
                         lo=0.0, hi=3600.0, lo_open=True)
    repeat_min: float = opt(10.0, "Reminder repeat interval until a break; 0 = no repeats.",
                            lo=0.0, hi=1440.0)
    snooze_min: float = opt(15.0, "Default snooze length for the snooze command.",
                            lo=0.0, hi=1440.0)


@dataclass
class MetricsConfig:
    interval_s: float = opt(10.0, "Length of each periodic metrics summary.", lo=1.0, hi=3600.0)


@dataclass
class MqttConfig:
    host: str = opt("localhost", "Broker host name or address.")
    port: int = opt(1883, "Broker port (8883 is usual for TLS).", lo=1, hi=65535)
    username: str = opt("", "MQTT user name; empty for anonymous.")
    password: str = opt("", "MQTT password. Prefer SPINESENSE_MQTT_PASSWORD or password_file.",
                        secret_env="SPINESENSE_MQTT_PASSWORD")
    password_file: str = opt("", "File whose first line is the MQTT password.")
    tls: bool = opt(False, "Connect with TLS.")
    ca_file: str = opt("", "CA certificate for TLS; empty uses the system store.")
    cert_file: str = opt("", "Client certificate for TLS client authentication.")
    key_file: str = opt("", "Client key for TLS client authentication.")
    keepalive_s: int = opt(30, "MQTT keepalive in seconds.", lo=5, hi=3600)
    topic_prefix: str = opt("spinesense", "First topic level: <prefix>/<device>/<kind>.")
    protocol: str = opt("v5", "MQTT protocol version.", choices=("v5", "v311"))
    reconnect_max_s: float = opt(30.0, "Longest wait between reconnect attempts (exponential "
                                 "backoff with jitter).", lo=1.0, hi=3600.0)


@dataclass
class SpoolConfig:
    path: str = opt("", "SQLite spool file; empty means <device.state_dir>/spool.sqlite3.")
    max_mb: float = opt(50.0, "Disk budget; metrics are dropped oldest-first beyond it.",
                        lo=0.1, hi=100000.0)
    hard_cap_mb: float = opt(200.0, "Beyond this even events are dropped (loudly).",
                             lo=0.1, hi=100000.0)
    replay_rate: float = opt(500.0, "Messages per second when draining a backlog.",
                             lo=1.0, hi=1e6)
    inflight: int = opt(64, "Messages handed to MQTT and not yet acknowledged, at most.",
                        lo=1, hi=10000)
    delete_on: str = opt("stored", "When a spooled message may be deleted: once the "
                         "collector confirms it is stored (its <prefix>/<device>/stored "
                         "mark), or already at the broker's PUBACK (only for consumers "
                         "other than the spinesense collector: a broker crash then loses "
                         "data).", choices=("stored", "puback"))
    resend_after_s: float = opt(30.0, "Re-send what the broker acknowledged but storage has "
                                "not confirmed after this long (doubling, up to 10 min, "
                                "while nothing is confirmed).", lo=1.0, hi=86400.0)


@dataclass
class HapticsConfig:
    enabled: bool = opt(False, "Buzz a vibration motor on alerts.")
    pin: int = opt(18, "BCM GPIO pin driving the motor (through a transistor).", lo=0, hi=27)


@dataclass
class FeedbackConfig:
    button: bool = opt(False, "Read a feedback push button (between the pin and GND): a short "
                       "press says the last buzz was wrong (or, with no recent buzz, that "
                       "you are taking a break); a long press says you are slouching now.")
    pin: int = opt(17, "BCM GPIO pin of the feedback button (internal pull-up).", lo=0, hi=27)
    long_press_s: float = opt(1.5, "Holding the button this long means \"I am slouching now\".",
                              lo=0.2, hi=10.0)
    false_alarm_window_s: float = opt(60.0, "A short press (or a false_alarm command) refers "
                                      "to the most recent buzz at most this long ago.",
                                      lo=1.0, hi=3600.0)
    straighten_s: float = opt(60.0, "spinesense tune: an unmarked slouch alert whose episode "
                              "ended (released) within this long counts as a weak positive.",
                              lo=1.0, hi=3600.0)


@dataclass
class RecordingConfig:
    enabled: bool = opt(False, "Record raw IMU data alongside the live loop.")
    dir: str = opt("", "Recording folder; empty means <device.state_dir>/recordings.")
    budget_mb: float = opt(500.0, "Disk budget; the oldest files are deleted beyond it.",
                           lo=1.0, hi=1e7)
    rotate_min: float = opt(60.0, "Start a new file every N minutes.", lo=1.0, hi=1440.0)


@dataclass
class CollectorConfig:
    group: str = opt("spinesense", "Shared-subscription group; collectors in one group split "
                     "the load. Empty subscribes without $share.")
    client_id: str = opt("", "MQTT client id (persistent session); empty derives one from the "
                         "host name.")
    batch_size: int = opt(5000, "Points per InfluxDB write at most.", lo=1, hi=1000000)
    flush_interval_s: float = opt(0.1, "Longest wait before a partial batch is written "
                                  "(bounds the publish-to-queryable latency).",
                                  lo=0.001, hi=60.0)
    max_inflight: int = opt(20000, "Unacknowledged messages held at most (backpressure).",
                            lo=1, hi=10000000)
    max_payload_bytes: int = opt(65536, "Larger MQTT payloads are dead-lettered.",
                                 lo=256, hi=268435455)
    dead_letter_file: str = opt("", "JSON-lines file for rejected messages; empty: none.")
    dead_letter_topic: str = opt("spinesense/_deadletter",
                                 "Topic for rejected messages; empty: none.")
    stats_interval_s: float = opt(10.0, "How often self-metrics are logged and written.",
                                  lo=0.5, hi=3600.0)
    session_expiry_s: int = opt(86400, "MQTT v5 session expiry: how long the broker keeps "
                                "unacknowledged messages for a stopped collector.",
                                lo=0, hi=4294967295)


@dataclass
class InfluxConfig:
    api: str = opt("v1", "v1: plain /write and /query (InfluxDB 1.x, e.g. Debian's 1.6); "
                   "v2: influxdb-client (InfluxDB 2.x, 3.x, 1.8+).", choices=("v1", "v2"))
    url: str = opt("http://localhost:8086", "InfluxDB base URL.")
    database: str = opt("spinesense", "v1: database name (created if missing).")
    retention_policy: str = opt("", "v1: retention policy; empty: the default.")
    username: str = opt("", "v1: user name; empty for no auth.")
    password: str = opt("", "v1 password. Prefer SPINESENSE_INFLUX_PASSWORD.",
                        secret_env="SPINESENSE_INFLUX_PASSWORD")
    org: str = opt("spinesense", "v2: organisation.")
    bucket: str = opt("spinesense", "v2: bucket.")
    token: str = opt("", "v2 token. Prefer SPINESENSE_INFLUX_TOKEN or token_file.",
                     secret_env="SPINESENSE_INFLUX_TOKEN")
    token_file: str = opt("", "File whose first line is the v2 token.")
    timeout_s: float = opt(10.0, "HTTP timeout for one write.", lo=0.1, hi=600.0)


@dataclass
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    sensor: SensorConfig = field(default_factory=SensorConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    slouch: SlouchConfig = field(default_factory=SlouchConfig)
    sitting: SittingConfig = field(default_factory=SittingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    haptics: HapticsConfig = field(default_factory=HapticsConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    influx: InfluxConfig = field(default_factory=InfluxConfig)

    @property
    def state_dir(self) -> Path:
        return Path(os.path.expanduser(self.device.state_dir))

    def to_dict(self, *, redact: bool = True) -> dict[str, dict[str, Any]]:
        out = dataclasses.asdict(self)
        if redact:
            for section in out.values():
                for key in ("password", "token"):
                    if section.get(key):
                        section[key] = "***"
        return out


SECTION_TYPES: dict[str, type] = get_type_hints(Config)
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _fail(key: str, problem: str, allowed: str) -> ConfigError:
    return ConfigError(f"{key}: {problem}; {allowed}")


def _unknown(key: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
    return ConfigError(f"{key}: unknown key in {where}; {hint}")


def _coerce(key: str, value: Any, typ: type, meta: dict[str, Any]) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) != (typ is bool) or not isinstance(value, typ):
        raise _fail(key, f"{value!r} is {type(value).__name__}", f"expected {_TYPE_NAMES[typ]}")
    if typ is float and not math.isfinite(value):
        raise _fail(key, f"{value!r} is not finite", "expected a finite number")
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices is not None and value not in choices:
        raise _fail(key, f"{value!r} is not allowed", "allowed: " + ", ".join(map(str, choices)))
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        rel = ">" if meta.get("lo_open") else ">="
        raise _fail(key, f"{value!r} is out of range", f"must be {rel} {lo}"
                    + (f" and <= {hi}" if hi is not None else ""))
    if hi is not None and value > hi:
        raise _fail(key, f"{value!r} is out of range", f"must be <= {hi}")
    return value


def is_placeholder(value: Any) -> bool:
    """A secret that reads like a redaction ("***", "<hidden>"), not like a password."""
    text = str(value).strip().lower()
    return (len(text) >= 3 and set(text) <= {"*"}) or text in (
        "<hidden>", "(hidden)", "hidden", "redacted", "<redacted>", "set (hidden)")


def from_dict(data: dict[str, Any], *, where: str = "config") -> Config:
    """Build a validated Config from parsed TOML; unknown keys and bad values raise."""
    cfg = Config()
    for sname, sval in data.items():
        if sname not in SECTION_TYPES:
            raise _unknown(sname, list(SECTION_TYPES), where)
        if not isinstance(sval, dict):
            raise _fail(sname, f"{sval!r} is not a table", f"write it as [{sname}]")
        section = getattr(cfg, sname)
        hints = get_type_hints(type(section))
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in sval.items():
            full = f"{sname}.{key}"
            if key not in fields:
                raise _unknown(full, list(fields), f"[{sname}]")
            meta = dict(fields[key].metadata)
            if meta.get("secret_env") and is_placeholder(value):
                raise _fail(full, f"{value!r} is the placeholder `config show` prints, not "
                            "the secret", f"set the real value here, in "
                            f"{meta['secret_env']} or in {key}_file")
            setattr(section, key, _coerce(full, value, hints[key], meta))
    _check_cross(cfg)
    return cfg


def _check_cross(cfg: Config) -> None:
    """Rules that involve more than one key."""
    if cfg.slouch.release_deg >= cfg.slouch.threshold_deg:
        raise _fail("slouch.release_deg", f"{cfg.slouch.release_deg} is not below "
                    f"slouch.threshold_deg ({cfg.slouch.threshold_deg})",
                    "the release must be lower than the threshold")
    dev = cfg.device.id
    if not dev or not all(c.isalnum() or c in "-_" for c in dev) or len(dev) > 64:
        raise _fail("device.id", f"{dev!r} is not a valid id",
                    "use 1-64 letters, digits, '-' or '_'")
    if cfg.feedback.button and cfg.haptics.enabled and cfg.feedback.pin == cfg.haptics.pin:
        raise _fail("feedback.pin", f"GPIO{cfg.feedback.pin} is also haptics.pin",
                    "wire the button and the motor to different pins")
    if cfg.spool.hard_cap_mb < cfg.spool.max_mb:
        raise _fail("spool.hard_cap_mb", f"{cfg.spool.hard_cap_mb} is below spool.max_mb",
                    "the hard cap must be at least max_mb")


def _resolve_secrets(cfg: Config) -> None:
    """Fill secret keys from their environment variable or *_file key."""
    for sname in SECTION_TYPES:
        section = getattr(cfg, sname)
        for f in dataclasses.fields(section):
            env = f.metadata.get("secret_env")
            if not env:
                continue
            if os.environ.get(env):
                setattr(section, f.name, os.environ[env])
            file_key = f"{f.name}_file"
            path = getattr(section, file_key, "")
            if path and not getattr(section, f.name):
                try:
                    text = Path(os.path.expanduser(path)).read_text(encoding="utf-8")
                except OSError as exc:
                    raise _fail(f"{sname}.{file_key}", f"cannot read {path!r} "
                                f"({exc.strerror})", "point it at a readable file") from None
                setattr(section, f.name, text.splitlines()[0].strip() if text else "")


def load(path: str | Path | None = None, *, overrides: dict[str, Any] | None = None) -> Config:
    """Read, validate and resolve a config file; None gives the defaults (plus env secrets)."""
    data: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        p = Path(path)
        where = str(p)
        try:
            if str(path) == "-":  # standard input: `... | spinesense config check -`
                where = "<stdin>"
                data = tomllib.load(sys.stdin.buffer)
            else:
                with p.open("rb") as fh:
                    data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found; create it (spinesense config "
                              "show > FILE prints the defaults) or fix the path") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                              f"offset {exc.start}); save the file as UTF-8 TOML") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    if overrides:
        for sname, sval in overrides.items():
            data.setdefault(sname, {}).update(sval)
    try:
        cfg = from_dict(data, where=where)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    _resolve_secrets(cfg)
    return cfg
