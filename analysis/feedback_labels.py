"""The wearer's feedback (DESIGN A4) as labels for `spinesense tune`.

Nobody writes ``start,end,label`` files for a workday, but a wearer does press a button
when a buzz was wrong. Those presses, and the alerts they did not press about, become
partial labels:

* a **marked false alarm** (``false_alarm`` with the ``alert_t`` of a slouch alert) is a
  *negative*: the device's episode of that alert (onset → end). A setting that still
  detects an episode there has a false positive;
* an **unmarked slouch alert after which the wearer straightened up** (its episode ended
  by release within ``feedback.straighten_s`` of the alert) is a *weak positive*;
* **"slouching now"** (``missed_slouch`` at t) is a *positive*, a missed episode, over
  ``[t - 60 s, t + 15 s]``: the press comes some time into the slouch.

Everything else is unlabelled: a detection that touches no label counts neither way (it
still counts in alerts per hour). Strong labels weigh 2, weak ones 1 (integers, because
tune's counts are). A setting is scored as in tune, per episode: positives matched one to
one with detections give recall; detections on positives and on negatives give precision.

The device's episodes (onset, alert, end, reason) come from its ``slouch_end`` events:
from InfluxDB (``--from-influx``), from the sidecar when it carries them, or else from
replaying the recording with the config tune runs with (which must then be the config the
device ran, for the alerts to line up).

With ``[recording] enabled`` the edge writes the sidecar itself, next to each raw
recording (``raw-<UTC>.feedback.jsonl`` beside ``raw-<UTC>.ssrec``): after ``record
export``, name it like the CSV or pass it with ``--feedback``.

**The sidecar** beside a recording, ``<name>.feedback.jsonl`` (or ``--feedback FILE``):
one JSON object per line in the recording's time base (the ``t`` column, seconds), as
the edge emits them, e.g.::

    {"type": "feedback", "t": 5012.5, "kind": "false_alarm", "alert_t": 5004.0}
    {"type": "feedback", "t": 7300.0, "kind": "missed_slouch"}
    {"type": "slouch_end", "t": 5020.0, "onset": 4999.0, "alert_t": 5004.0, "reason": "released"}

Other types are ignored; blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from spinesense.analysis.dataset import DataError, InfluxReader, Labels, _quote
from spinesense.config import Config
from spinesense.edge.feedback import SIDECAR_SUFFIX, sidecar_path
from spinesense.schema import TIME_KEYS

KINDS = ("false_alarm", "missed_slouch", "break")
STRONG, WEAK = 2, 1
MISSED_BEFORE_S, MISSED_AFTER_S = 60.0, 15.0
ALERT_TOLERANCE_S = 1.0  # alert_t against the device's alert times (ms rounding, replays)


@dataclass
class FeedbackLabels(Labels):
    """Labels from feedback: ``slouch`` holds the positives (weights in
    ``positive_weight``), ``negative`` the marked false alarms' episodes."""

    positive_weight: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    negative: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    counts: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------- labels


def build(feedback: list[dict[str, Any]], episodes: list[dict[str, Any]],
          other_alerts: list[float], *, straighten_s: float,
          source: str = "") -> FeedbackLabels:
    """Labels from feedback events ({t, kind, alert_t?}) and the device's slouch episodes
    ({onset, alert_t, t (end), reason}); ``other_alerts``: times of sitting alerts and
    reminders (a false alarm about one of those says nothing about slouch settings)."""
    ep_alert = np.array([float(e["alert_t"]) for e in episodes], float)
    counts = dict.fromkeys(("false_alarm", "missed_slouch", "break", "weak_positive",
                            "sitting_false_alarm", "unmatched"), 0)
    marked: set[int] = set()
    negatives: list[tuple[float, float]] = []
    positives: list[tuple[float, float, int]] = []
    for fb in feedback:
        kind = fb["kind"]
        if kind == "missed_slouch":
            t = float(fb["t"])
            positives.append((t - MISSED_BEFORE_S, t + MISSED_AFTER_S, STRONG))
            counts[kind] += 1
        elif kind == "break":
            counts[kind] += 1
        elif kind == "false_alarm":
            alert = fb.get("alert_t")
            near = (np.flatnonzero(np.abs(ep_alert - float(alert)) <= ALERT_TOLERANCE_S)
                    if alert is not None else np.zeros(0, int))
            if len(near):
                i = int(near[0])
                if i not in marked:
                    marked.add(i)
                    negatives.append((float(episodes[i]["onset"]), float(episodes[i]["t"])))
                counts[kind] += 1
            elif alert is not None and any(abs(a - float(alert)) <= ALERT_TOLERANCE_S
                                           for a in other_alerts):
                counts["sitting_false_alarm"] += 1
            else:
                counts["unmatched"] += 1
    for i, e in enumerate(episodes):
        if (i not in marked and e.get("reason") == "released"
                and float(e["t"]) - float(e["alert_t"]) <= straighten_s):
            positives.append((float(e["onset"]), float(e["t"]), WEAK))
            counts["weak_positive"] += 1
    pos, weight = _merge(positives)
    return FeedbackLabels(slouch=pos, positive_weight=weight,
                          negative=np.array(sorted(negatives), float).reshape(-1, 2),
                          breaks=np.array(sorted(float(f["t"]) for f in feedback
                                                 if f["kind"] == "break")),
                          counts=counts, source=source)


def _merge(intervals: list[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping positives become one (the stronger weight): matching is one to one."""
    out: list[list[float]] = []
    for lo, hi, w in sorted(intervals):
        if out and lo < out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
            out[-1][2] = max(out[-1][2], w)
        else:
            out.append([lo, hi, w])
    arr = np.array(out, float).reshape(-1, 3)
    return arr[:, :2].copy(), arr[:, 2].astype(int)


def score(ep: Any, labels: FeedbackLabels) -> dict[str, float]:
    """tune's counts for one recording: ``found``/``n_true`` are weighted positives,
    ``n_pred`` the weighted detections that touch a label, ``alerts`` all detections."""
    from spinesense.analysis.tune_sweep import match_episodes

    pred = ep.intervals()
    pi, tj = match_episodes(pred, labels.slouch)
    found = int(labels.positive_weight[tj].sum())
    false_pos = 0
    if len(pred) and len(labels.negative):
        neg = labels.negative
        touches = ((pred[:, 0, None] < neg[None, :, 1])
                   & (neg[None, :, 0] < pred[:, 1, None])).any(axis=1)
        touches[pi] = False  # a detection matched to a positive is not a false one
        false_pos = STRONG * int(touches.sum())
    return {"tp": found, "n_pred": found + false_pos, "found": found,
            "n_true": int(labels.positive_weight.sum()), "timing_sum": 0.0, "timing_n": 0,
            "alerts": len(pred)}


def finish(rows: list[dict[str, float]], hours: float) -> None:
    """Alerts per hour count every detection, labelled or not."""
    for r in rows:
        r["alerts_per_h"] = r["alerts"] / hours if hours else 0.0


def describe(recs: list[Any]) -> str:
    total: dict[str, int] = {}
    for rec in recs:
        for k, v in rec.labels.counts.items():
            total[k] = total.get(k, 0) + v
    text = (f"feedback labels: {total['false_alarm']} marked false alarms (negatives), "
            f"{total['weak_positive']} unmarked alerts the wearer straightened up after "
            f"(weak positives), {total['missed_slouch']} \"slouching now\" (missed "
            f"episodes); {total['break']} breaks not used")
    if total["sitting_false_alarm"]:
        text += f"; {total['sitting_false_alarm']} false alarms about sitting alerts not used"
    if not total["weak_positive"] and not total["missed_slouch"]:
        text += ("; no positive labels, so nothing keeps the threshold from rising: the "
                 "recommendation is only the quietest setting that avoids the marked alerts")
    if total["unmatched"]:
        text += (f"; {total['unmatched']} false alarms matched no slouch alert of the device "
                 "(was the config the device ran different?)")
    return text


# ---------------------------------------------------------------------------- sources


def read_sidecar(path: Path) -> list[dict[str, Any]]:
    """The sidecar's events; a bad line fails with its number."""
    events = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    ev = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{lineno}: not JSON ({exc})") from None
                if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
                    raise DataError(f"{path}:{lineno}: expected an object with \"type\", "
                                    'e.g. {"type": "feedback", "t": 12.5, "kind": "break"}')
                _check(ev, f"{path}:{lineno}")
                events.append(ev)
    except FileNotFoundError:
        raise DataError(f"{path}: feedback file not found; give --feedback FILE.jsonl, or put "
                        f"<name>{SIDECAR_SUFFIX} next to the recording") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; the feedback sidecar is JSON lines") from None
    return events


def _check(ev: dict[str, Any], where: str) -> None:
    if ev["type"] == "feedback" and ev.get("kind") not in KINDS:
        raise DataError(f"{where}: feedback kind {ev.get('kind')!r} is not one of "
                        f"{', '.join(KINDS)}")
    keys = ("t",) + (("onset", "alert_t") if ev["type"] == "slouch_end" else ())
    for key in keys:
        v = ev.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise DataError(f"{where}: {ev['type']} needs {key} in seconds, got {v!r}")
    alert = ev.get("alert_t")
    if ev["type"] == "feedback" and alert is not None and (
            isinstance(alert, bool) or not isinstance(alert, (int, float))):
        raise DataError(f"{where}: alert_t must be seconds or absent, got {alert!r}")


def _split(events: list[dict[str, Any]]) -> tuple[list, list, list]:
    feedback = [e for e in events if e["type"] == "feedback"]
    episodes = [e for e in events if e["type"] == "slouch_end"]
    other = [float(e["t"]) for e in events if e["type"] in ("sitting_alert",
                                                              "sitting_reminder")]
    return feedback, episodes, other


def for_recording(recording: Path, sidecar: Path, records: list[dict[str, Any]],
                  span: tuple[float, float], cfg: Config) -> FeedbackLabels:
    """Labels from a sidecar; the device's episodes from it, else from ``records`` (the
    replay with the config). The feedback must lie in the recording's time span."""
    events = read_sidecar(sidecar)
    feedback, episodes, other = _split(events)
    if not feedback:
        raise DataError(f"{sidecar}: no feedback events; each line like "
                        '{"type": "feedback", "t": 12.5, "kind": "false_alarm", '
                        '"alert_t": 8.0}')
    inside = [f for f in feedback if span[0] <= float(f["t"]) <= span[1]]
    if not inside:
        raise DataError(f"{sidecar}: no feedback time lies within {recording.name} "
                        f"({span[0]:g}..{span[1]:g} s); the sidecar must use the "
                        "recording's time base (its t column)")
    if not episodes:
        _, episodes, other = _split(records)
    return build(inside, episodes, other, straighten_s=cfg.feedback.straighten_s,
                 source=str(sidecar))


def from_influx(cfg: Config, device: str, start: datetime, end: datetime) -> FeedbackLabels:
    """Feedback and the device's slouch episodes as stored in InfluxDB (epoch seconds)."""
    reader = InfluxReader(cfg.influx)
    rows = reader.query(
        'SELECT * FROM "posture_event" WHERE "type" =~ /^(feedback|slouch_end|sitting_alert|'
        f'sitting_reminder)$/ AND "device" = {_quote(device)} AND time >= '
        f"{int(start.timestamp() * 1000)}ms AND time < {int(end.timestamp() * 1000)}ms")
    events = []
    for row in rows:
        ev = {k: v for k, v in row.items() if v is not None and k not in ("time", "device")}
        ev["t"] = row["time"] / 1000
        for key in TIME_KEYS:
            if isinstance(ev.get(key), (int, float)):
                ev[key] = ev[key] / 1000
        events.append(ev)
    feedback, episodes, other = _split(events)
    if not feedback:
        raise DataError(f"no feedback events for device {device!r} between "
                        f"{start.isoformat()} and {end.isoformat()}; press the button or "
                        'send {"cmd": "feedback", ...} (docs/edge-service.md)')
    return build(feedback, episodes, other, straighten_s=cfg.feedback.straighten_s,
                 source=f"InfluxDB {cfg.influx.url}")


def attach(args: Any, cfg: Config, recs: list[Any]) -> None:
    """Give each of tune's recordings its feedback labels (``--feedback``)."""
    from spinesense.analysis.dataset import parse_when

    if args.from_influx:
        recs[0].labels = from_influx(cfg, args.device, parse_when(args.start),
                                     parse_when(args.end, end=True))
        return
    paths = [Path(p) for p in args.recordings]
    files = [Path(f) for f in args.feedback] or [sidecar_path(p) for p in paths]
    if len(files) != len(paths):
        raise DataError(f"--feedback: {len(files)} files for {len(paths)} recordings; give "
                        f"one per recording, or none to use each <name>{SIDECAR_SUFFIX}")
    for rec, path, sidecar in zip(recs, paths, files, strict=True):
        feats = rec.features.features
        t = feats.t
        rec.labels = for_recording(path, sidecar, feats.records,
                                   (float(t[0]), float(t[-1])), cfg)
