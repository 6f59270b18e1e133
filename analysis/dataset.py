"""One shape for a stretch of posture data, whether it comes from InfluxDB or a recording.

The report and the metrics-only tuner read a :class:`Dataset`: the periodic metric
summaries (interface 4/6 fields), the events, and a flexion/posture time line. From a
recording the time line has per-second resolution (the pipeline's ``state`` records);
from InfluxDB it has the metrics interval's resolution (10 s by default), and the dataset
says so in ``resolution_s``. Times are seconds: epoch seconds (UTC) when ``epoch`` is
true, else the recording's own time base.
"""

from __future__ import annotations

import base64
import csv
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from spinesense.config import Config, InfluxConfig
from spinesense.edge.recordings import Units
from spinesense.schema import METRIC_FIELDS, TIME_KEYS

# A recording's t column may have any origin (DESIGN A1). A monotonic clock (uptime)
# never reaches 10^9 s (31 years), so t from 2001-09-09 on is read as Unix time (UTC).
EPOCH_MIN_S = 1e9


class DataError(ValueError):
    """No usable data, or a data source that cannot be read; one line naming the fix."""


@dataclass
class Dataset:
    """Metric summaries, events and a posture time line over one range."""

    source: str
    device: str | None
    epoch: bool  # times are UTC epoch seconds (else the recording's own time base)
    start: float
    end: float
    metrics: dict[str, np.ndarray]  # "t" (end of each interval) + METRIC_FIELDS + "posture"
    events: list[dict[str, Any]]  # {"type", "t", ...}, time fields in the same base
    line_t: np.ndarray  # time line: flexion and posture at these times
    line_flexion: np.ndarray
    line_posture: np.ndarray  # strings: sitting/standing/walking/lying/unknown
    resolution_s: float
    notes: list[str] = field(default_factory=list)

    def column(self, name: str) -> np.ndarray:
        """A numeric metric column, zeros where the field was never written."""
        col = self.metrics.get(name)
        if col is None:
            return np.zeros(len(self.metrics["t"]))
        return np.nan_to_num(col.astype(float))

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in types]


# ---------------------------------------------------------------------- from a recording


def from_records(records: list[dict[str, Any]], *, source: str) -> Dataset:
    """Build a dataset from pipeline records (metrics, events and per-second states)."""
    metrics = [r for r in records if r["type"] == "metric"]
    states = [r for r in records if r["type"] == "state"]
    events = [r for r in records if r["type"] not in ("metric", "state")]
    if not metrics:
        raise DataError(f"{source}: the pipeline produced no metrics (is the recording "
                        "shorter than one metrics interval?)")
    cols = _columns(metrics)
    if states:
        line_t = np.array([s["t"] for s in states], float)
        line_flexion = np.array([_num(s.get("flexion_deg")) for s in states], float)
        line_posture = np.array([s.get("posture", "unknown") for s in states], object)
        resolution = float(np.median(np.diff(line_t))) if len(line_t) > 1 else 1.0
    else:
        line_t, line_flexion, line_posture, resolution = _line_from_metrics(cols)
    start = float(min(line_t[0], cols["t"][0] - cols["interval_s"][0]))
    epoch = start >= EPOCH_MIN_S
    note = ("The recording's t column reads as Unix time (UTC), so clock times and dates "
            "are shown." if epoch else
            "Times are counted from the start of the recording: its t column carries no "
            "date (values under 10^9 s are read as a monotonic clock, not as Unix time).")
    return Dataset(source=source, device=None, epoch=epoch, start=start,
                   end=float(cols["t"][-1]), metrics=cols, events=events, line_t=line_t,
                   line_flexion=line_flexion, line_posture=line_posture,
                   resolution_s=resolution, notes=[note])


def from_recording(path: str | Path, cfg: Config,
                   calibrate: tuple[float, float] | None = None, *,
                   units: Units | None = None) -> Dataset:
    """Replay a recording (CSV, CSV.gz or .ssrec) through the real pipeline, with
    per-second states."""
    from spinesense.edge.replay import replay

    records = replay(str(path), cfg, calibrate=calibrate, states=True, units=units)
    return from_records(records, source=f"recording {Path(path).name}")


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _columns(metrics: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {"t": np.array([m["t"] for m in metrics], float)}
    for name in METRIC_FIELDS:
        if any(name in m for m in metrics):
            cols[name] = np.array([_num(m.get(name)) for m in metrics], float)
    if "interval_s" not in cols:
        step = float(np.median(np.diff(cols["t"]))) if len(cols["t"]) > 1 else 10.0
        cols["interval_s"] = np.full(len(cols["t"]), step)
    cols["posture"] = np.array([m.get("posture") or "unknown" for m in metrics], object)
    return cols


def _line_from_metrics(cols: dict[str, np.ndarray]):
    """The metrics' own resolution: mean flexion and dominant posture per interval."""
    t = cols["t"] - cols["interval_s"] / 2  # the middle of each interval
    flex = cols.get("flexion_mean", np.full(len(t), np.nan))
    resolution = float(np.median(cols["interval_s"])) if len(t) else 10.0
    return t, flex, cols["posture"], resolution


# ------------------------------------------------------------------------ from InfluxDB


def parse_when(text: str, *, end: bool = False) -> datetime:
    """ISO date or date-time; a bare date means the start of that day, or with ``end``
    the end of it (so ``--from 2026-11-25 --to 2026-11-25`` is that whole day). Naive
    values are UTC."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            dt = datetime.combine(d + timedelta(days=1) if end else d, time(), UTC)
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{text!r} is not a date; use YYYY-MM-DD or an ISO date-time such "
                        "as 2026-11-25T09:00:00Z") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class InfluxReader:
    """InfluxQL over HTTP ``/query``: InfluxDB 1.x directly; 2.x/3.x through the v1
    compatibility endpoint (DBRP mapping of the bucket), authenticated with the token."""

    def __init__(self, cfg: InfluxConfig):
        self.cfg = cfg
        self.db = cfg.database if cfg.api == "v1" else cfg.bucket

    def _headers(self) -> dict[str, str]:
        if self.cfg.api == "v2" and self.cfg.token:
            return {"Authorization": f"Token {self.cfg.token}"}
        if self.cfg.username:
            cred = f"{self.cfg.username}:{self.cfg.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(cred).decode()}
        return {}

    def query(self, q: str) -> list[dict[str, Any]]:
        """The rows of one statement, tags merged into each row."""
        params = urllib.parse.urlencode({"q": q, "db": self.db, "epoch": "ms"}).encode()
        if self.cfg.retention_policy and self.cfg.api == "v1":
            params += b"&" + urllib.parse.urlencode({"rp": self.cfg.retention_policy}).encode()
        req = urllib.request.Request(self.cfg.url.rstrip("/") + "/query", data=params,
                                     headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=max(self.cfg.timeout_s, 30)) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise DataError(f"InfluxDB at {self.cfg.url} answered {exc.code} "
                            f"({exc.read()[:200].decode(errors='replace')}); check "
                            "[influx] url, database and credentials") from None
        except OSError as exc:
            raise DataError(f"cannot reach InfluxDB at {self.cfg.url} ({exc}); is it "
                            "running, and is [influx] url right?") from None
        result = (body.get("results") or [{}])[0]
        if "error" in result:
            raise DataError(f"InfluxDB: {result['error']} (database {self.db!r})")
        rows: list[dict[str, Any]] = []
        for series in result.get("series", []):
            tags = series.get("tags") or {}
            for values in series["values"]:
                rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return rows


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def from_influx(cfg: Config, device: str, start: datetime, end: datetime) -> Dataset:
    """Metrics and events of one device in [start, end) from InfluxDB."""
    if end <= start:
        raise DataError(f"--to ({end.isoformat()}) is not after --from ({start.isoformat()})")
    reader = InfluxReader(cfg.influx)
    where = (f'"device" = {_quote(device)} AND time >= {int(start.timestamp() * 1000)}ms '
             f"AND time < {int(end.timestamp() * 1000)}ms")
    metrics = reader.query(f'SELECT * FROM "posture" WHERE {where}')
    if not metrics:
        known = [r["value"] for r in reader.query(
            'SHOW TAG VALUES FROM "posture" WITH KEY = "device"')]
        raise DataError(f"no metrics for device {device!r} between {start.isoformat()} and "
                        f"{end.isoformat()} in database {reader.db!r}; devices there: "
                        f"{', '.join(known) or 'none'}")
    events = reader.query(f'SELECT * FROM "posture_event" WHERE {where}')
    records = [{**{k: v for k, v in row.items() if k not in ("time", "device", "seq")},
                "type": "metric", "t": row["time"] / 1000} for row in metrics]
    evs = []
    for row in events:
        ev = {k: v for k, v in row.items() if v is not None and k not in ("time", "device")}
        ev["t"] = row["time"] / 1000
        for key in TIME_KEYS:
            if isinstance(ev.get(key), (int, float)):
                ev[key] = ev[key] / 1000
        evs.append(ev)
    cols = _columns(records)
    line_t, flex, posture, resolution = _line_from_metrics(cols)
    return Dataset(source=f"InfluxDB {cfg.influx.url} / {reader.db}", device=device,
                   epoch=True, start=float(cols["t"][0] - cols["interval_s"][0]),
                   end=float(cols["t"][-1]), metrics=cols,
                   events=sorted(evs, key=lambda e: e["t"]), line_t=line_t,
                   line_flexion=flex, line_posture=posture, resolution_s=resolution,
                   notes=[f"From InfluxDB the time line has the metrics' {resolution:g} s "
                          "resolution (mean flexion and dominant posture per interval)."])


def records_to_lines(records: list[dict[str, Any]], device: str, epoch_offset_s: float,
                     seq0: int = 0) -> list[str]:
    """Pipeline records as InfluxDB line protocol, through the same code the edge
    (``record_to_message``) and the collector (``message_to_line``) run: how a recording
    is loaded into InfluxDB as if it had been worn live. ``epoch_offset_s`` maps the
    recording's time base to UTC epoch seconds. Per-second ``state`` records are not
    published by the edge and are skipped."""
    from spinesense.collector.points import message_to_line
    from spinesense.schema import kind_of, record_to_message

    def to_ms(t: float) -> int:
        return round((t + epoch_offset_s) * 1000)

    lines = []
    seq = seq0
    for rec in records:
        if rec["type"] == "state":
            continue
        msg = record_to_message(rec, device, seq, to_ms)
        lines.append(message_to_line(kind_of(rec["type"]), msg))
        seq += 1
    return lines


def write_lines(url: str, db: str, lines: list[str], batch: int = 5000) -> None:
    """POST line protocol (ms precision) to an InfluxDB 1.x ``/write``."""
    for i in range(0, len(lines), batch):
        body = "\n".join(lines[i:i + batch]).encode()
        req = urllib.request.Request(
            f"{url.rstrip('/')}/write?" + urllib.parse.urlencode({"db": db, "precision": "ms"}),
            data=body)
        with urllib.request.urlopen(req, timeout=60) as resp:
            if resp.status != 204:
                raise DataError(f"InfluxDB /write answered {resp.status}")


# --------------------------------------------------------------------------------- labels


@dataclass
class Labels:
    """Ground truth for one recording, in the recording's time base (seconds)."""

    slouch: np.ndarray  # (n, 2) onset, end
    slouch_alert: np.ndarray | None = None  # (n,) labelled alert times, when known
    sitting_alerts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    breaks: np.ndarray = field(default_factory=lambda: np.zeros(0))  # times recognised
    params: dict[str, float] = field(default_factory=dict)  # label_params, when known
    source: str = ""
    # what the labels were made for, when known (the simulator's truth): t0, duration_s,
    # n_samples of its recording; checked against the recording before scoring
    made_for: dict[str, float] = field(default_factory=dict)


def _intervals(rows: Iterable[tuple[float, float]]) -> np.ndarray:
    arr = np.array(sorted(rows), float).reshape(-1, 2)
    return arr


def load_truth(path: str | Path) -> Labels:
    """The simulator's truth JSON (interface 2)."""
    p = Path(path)
    try:
        truth = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: truth file not found; `spinesense simulate` writes it next to "
                        "the recording as <name>.truth.json") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: not valid JSON ({exc})") from None
    try:
        eps = sorted(truth["slouch_episodes"], key=lambda e: e["onset"])
        return Labels(
            slouch=_intervals((e["onset"], e["end"]) for e in eps),
            slouch_alert=np.array([e.get("alert", np.nan) for e in eps], float),
            sitting_alerts=np.array(sorted(a["t"] for a in truth.get("sitting_alerts", [])),
                                    float),
            breaks=np.array(sorted(b["t"] for b in truth.get("breaks", [])), float),
            params={k: float(v) for k, v in (truth.get("label_params") or {}).items()
                    if isinstance(v, (int, float))},
            source=str(p),
            # with gaps, the first and last samples need not be at t0 and t0 + duration
            made_for={k: float(truth[k]) for k in (
                ("n_samples",) if truth.get("gaps") else ("t0", "duration_s", "n_samples"))
                if isinstance(truth.get(k), (int, float))})
    except (KeyError, TypeError) as exc:
        raise DataError(f"{p}: not a simulator truth file (missing {exc}); expected keys "
                        "slouch_episodes [{onset, alert, end}], sitting_alerts, breaks") from None


LABEL_KINDS = {"slouch": "slouch", "slouching": "slouch", "sitting_alert": "sitting_alert",
               "break": "break", "sitting_break": "break"}


def load_labels_csv(path: str | Path) -> Labels:
    """``start,end,label`` rows (seconds in the recording's time base; a header line is
    optional). Labels: ``slouch`` intervals; ``sitting_alert`` and ``break`` instants
    (their start is the time). Other labels are ignored (e.g. ``sitting``)."""
    p = Path(path)
    slouch: list[tuple[float, float]] = []
    alerts: list[float] = []
    brk: list[float] = []
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh), 1):
                if not row or row[0].startswith("#"):
                    continue
                if lineno == 1 and row[0].strip().lower() == "start":
                    continue
                if len(row) < 3:
                    raise DataError(f"{p}:{lineno}: expected start,end,label, got {row!r}")
                try:
                    start, end = float(row[0]), float(row[1])
                except ValueError:
                    raise DataError(f"{p}:{lineno}: start and end must be seconds, got "
                                    f"{row[0]!r}, {row[1]!r}") from None
                if end < start:
                    raise DataError(f"{p}:{lineno}: end {end} is before start {start}")
                kind = LABEL_KINDS.get(row[2].strip().lower())
                if kind == "slouch":
                    slouch.append((start, end))
                elif kind == "sitting_alert":
                    alerts.append(start)
                elif kind == "break":
                    brk.append(end)
    except FileNotFoundError:
        raise DataError(f"{p}: labels file not found") from None
    if not slouch and not alerts:
        raise DataError(f"{p}: no slouch or sitting_alert labels; label rows as "
                        "start,end,slouch")
    return Labels(slouch=_intervals(slouch), sitting_alerts=np.array(sorted(alerts)),
                  breaks=np.array(sorted(brk)), source=str(p))


def truth_path(recording: Path) -> Path:
    """The simulator's truth JSON beside a recording (see `beside_recording`)."""
    from spinesense.firmware.recording import beside_recording

    return beside_recording(recording, ".truth.json")
