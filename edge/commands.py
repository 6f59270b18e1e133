"""Remote commands on ``<prefix>/<device>/cmd``: validated, then applied, or refused.

A command is a JSON object with ``cmd`` and its arguments, and an optional ``id`` that the
reply echoes::

    {"cmd": "snooze", "minutes": 30}
    {"cmd": "recalibrate"}
    {"cmd": "set_thresholds", "slouch": {"threshold_deg": 18, "delay_s": 8},
                              "sitting": {"limit_min": 45}}
    {"cmd": "status", "id": "42"}
    {"cmd": "feedback", "kind": "false_alarm"}      # or missed_slouch, break; "t": Unix s

Every command gets one reply on the status topic (not retained): ``cmd_ok`` with what was
done, or ``cmd_error`` with one line naming what was wrong. A refused command changes
nothing. Threshold changes are validated by the config schema itself (same ranges, same
release-below-threshold rule), applied to the running pipeline, and persisted to
``<state_dir>/thresholds.json``, which is applied over the config file at every start.
``feedback`` (DESIGN A4) is handed to the service's feedback (spinesense.edge.feedback),
which stores it as a ``feedback`` event.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from spinesense.config import Config, ConfigError, from_dict

log = logging.getLogger(__name__)

MAX_CMD_BYTES = 4096
MAX_SNOOZE_MIN = 1440.0
THRESHOLD_KEYS = {
    "slouch": ("threshold_deg", "release_deg", "delay_s"),
    "sitting": ("limit_min", "break_s", "repeat_min", "snooze_min"),
}
COMMANDS = ("snooze", "recalibrate", "set_thresholds", "status", "feedback")
FEEDBACK_KINDS = ("false_alarm", "missed_slouch", "break")


class CommandTarget(Protocol):
    """What commands act on: the running pipeline (interface 4)."""

    def snooze(self, minutes: float) -> None: ...
    def recalibrate(self) -> None: ...
    def set_thresholds(self, **kwargs: float) -> None: ...


class CommandError(ValueError):
    """A refused command; the message is the one-line reason sent back."""


def thresholds_path(state_dir: Path) -> Path:
    return Path(state_dir) / "thresholds.json"


def load_thresholds(cfg: Config) -> dict[str, dict[str, float]]:
    """Apply the persisted thresholds over ``cfg`` (in place); returns what was applied.

    A damaged file is reported and ignored: the config file's values then hold.
    """
    path = thresholds_path(cfg.state_dir)
    if not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        merged = _validated(cfg, saved)
    except (OSError, ValueError) as exc:
        log.error("%s: ignored (%s); delete it or send set_thresholds again", path, exc)
        return {}
    _apply_to_config(cfg, merged)
    log.info("applied thresholds saved by a command: %s", saved)
    return saved


def _validated(cfg: Config, changes: Any) -> dict[str, dict[str, float]]:
    """The slouch/sitting sections with ``changes`` applied, checked by the config schema."""
    if not isinstance(changes, dict) or not changes:
        raise CommandError("set_thresholds needs a 'slouch' and/or 'sitting' object, e.g. "
                           '{"cmd": "set_thresholds", "slouch": {"threshold_deg": 18}}')
    merged = {s: {k: getattr(getattr(cfg, s), k) for k in keys}
              for s, keys in THRESHOLD_KEYS.items()}
    for section, values in changes.items():
        if section not in THRESHOLD_KEYS:
            raise CommandError(f"set_thresholds: unknown section {section!r}; use "
                               + " or ".join(THRESHOLD_KEYS))
        if not isinstance(values, dict) or not values:
            raise CommandError(f"set_thresholds: {section} must be a non-empty object of "
                               f"keys ({', '.join(THRESHOLD_KEYS[section])})")
        for key, value in values.items():
            if key not in THRESHOLD_KEYS[section]:
                raise CommandError(f"set_thresholds: {section}.{key} cannot be set remotely; "
                                   f"settable: {', '.join(THRESHOLD_KEYS[section])}")
            merged[section][key] = value
    try:
        from_dict(merged, where="set_thresholds")
    except ConfigError as exc:
        raise CommandError(f"set_thresholds: {exc}") from None
    return {s: {k: float(v) for k, v in vals.items()} for s, vals in merged.items()}


def _apply_to_config(cfg: Config, merged: dict[str, dict[str, float]]) -> None:
    for section, values in merged.items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename with fsync: a power cut leaves the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    """Replies are stored as flat status fields: no None, nothing nested."""
    return {k: v for k, v in data.items() if v is not None}


class CommandHandler:
    """Parses, validates and applies one command; returns (reply type, reply data)."""

    def __init__(self, cfg: Config, target: CommandTarget,
                 status: Callable[[], dict[str, Any]],
                 feedback: Callable[[str, float | None], dict[str, Any]] | None = None):
        self.cfg, self.target, self.status, self.feedback = cfg, target, status, feedback
        self.accepted = 0
        self.rejected = 0

    def handle(self, payload: bytes, retained: bool = False) -> tuple[str, dict[str, Any]]:
        cmd_id: Any = None
        name = "?"
        try:
            if retained:
                raise CommandError("retained command ignored: it would repeat at every "
                                   "reconnect; publish without the retain flag, and clear "
                                   "it with an empty retained message")
            if len(payload) > MAX_CMD_BYTES:
                raise CommandError(f"command of {len(payload)} bytes is over the "
                                   f"{MAX_CMD_BYTES}-byte limit; send a smaller object")
            try:
                msg = json.loads(payload)
            except (ValueError, UnicodeDecodeError) as exc:
                raise CommandError(f"not valid JSON ({exc}); send an object like "
                                   '{"cmd": "status"}') from None
            if not isinstance(msg, dict):
                raise CommandError('a command must be a JSON object like {"cmd": "status"}')
            cmd_id = msg.pop("id", None)
            if cmd_id is not None and not isinstance(cmd_id, (str, int)):
                cmd_id = None
                raise CommandError("id must be a string or an integer")
            name = msg.pop("cmd", None)
            if name not in COMMANDS:
                shown = "missing" if name is None else f"{name!r} is unknown"
                name = "?" if not isinstance(name, str) else name[:40]
                raise CommandError(f"cmd {shown}; one of {', '.join(COMMANDS)}")
            detail = getattr(self, f"_cmd_{name}")(msg)
        except CommandError as exc:
            self.rejected += 1
            log.warning("command refused: %s", exc)
            return "cmd_error", _flat({"cmd": name, "id": cmd_id, "error": str(exc)})
        self.accepted += 1
        log.info("command %s applied: %s", name, detail)
        return "cmd_ok", _flat({"cmd": name, "id": cmd_id, **detail})

    @staticmethod
    def _no_args(name: str, args: dict[str, Any]) -> None:
        if args:
            raise CommandError(f"{name} takes no arguments; got {', '.join(sorted(args))}")

    def _cmd_snooze(self, args: dict[str, Any]) -> dict[str, Any]:
        minutes = args.pop("minutes", self.cfg.sitting.snooze_min)
        self._no_args("snooze", args)
        if (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
                or not 0 < minutes <= MAX_SNOOZE_MIN):
            raise CommandError(f"snooze minutes {minutes!r} is out of range; use a number "
                               f"> 0 and <= {MAX_SNOOZE_MIN:g}")
        self.target.snooze(float(minutes))
        return {"minutes": float(minutes)}

    def _cmd_recalibrate(self, args: dict[str, Any]) -> dict[str, Any]:
        self._no_args("recalibrate", args)
        self.target.recalibrate()
        return {"detail": "recalibrating from the next still, upright stretch"}

    def _cmd_set_thresholds(self, args: dict[str, Any]) -> dict[str, Any]:
        merged = _validated(self.cfg, args)
        changes = {s: {k: merged[s][k] for k in vals} for s, vals in args.items()}
        flat = {k: v for vals in changes.values() for k, v in vals.items()}
        self.target.set_thresholds(**flat)
        _apply_to_config(self.cfg, merged)
        path = thresholds_path(self.cfg.state_dir)
        saved: dict[str, dict[str, float]] = {}
        if path.exists():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                saved = {}
        for section, vals in changes.items():
            saved.setdefault(section, {}).update(vals)
        _write_atomic(path, saved)
        return {"applied": json.dumps(changes, sort_keys=True)}

    def _cmd_status(self, args: dict[str, Any]) -> dict[str, Any]:
        self._no_args("status", args)
        return self.status()

    def _cmd_feedback(self, args: dict[str, Any]) -> dict[str, Any]:
        kind = args.pop("kind", None)
        t = args.pop("t", None)
        self._no_args("feedback", args)
        if kind not in FEEDBACK_KINDS:
            shown = "is missing" if kind is None else f"{str(kind)[:40]!r} is unknown"
            raise CommandError(f"feedback kind {shown}; one of {', '.join(FEEDBACK_KINDS)}")
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                              or not math.isfinite(t)):
            raise CommandError(f"feedback t {str(t)[:40]!r} is not a number; send Unix "
                               "seconds, or leave t out (it means now)")
        if self.feedback is None:
            raise CommandError("feedback is not handled here")
        return self.feedback(kind, None if t is None else float(t))
