"""Reading DESIGN A1 recordings and replaying them through the live pipeline.

Reading is the slow part of a replay, so the CSV is parsed in large blocks by numpy's C
parser (``np.loadtxt`` on a block of lines is several times faster than on the whole
file line by line in Python). Only when a block fails does a slow, line-by-line pass run
over that block, to say exactly which line is wrong and how.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from spinesense.edge.calibration import Calibration

from spinesense.config import Config
from spinesense.samples import SampleChunk

HEADER = ("t", "ax", "ay", "az", "gx", "gy", "gz")
BLOCK_LINES = 200_000


class RecordingError(ValueError):
    """A malformed recording; the message names the file, the line and the problem."""


def _open(path: Path) -> io.TextIOBase:
    try:
        if path.name.endswith(".gz"):
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror})") from None


def _check_header(path: Path, line: str) -> tuple[int, int | None]:
    cols = [c.strip() for c in line.strip().lstrip("\ufeff").split(",")]
    if tuple(cols[:7]) != HEADER:
        raise RecordingError(f"{path}:1: header is {line.strip()[:60]!r}; expected "
                             f"'{','.join(HEADER)}' (extra columns may follow)")
    sat = next((i for i, c in enumerate(cols) if c in ("saturated", "sat")), None)
    return len(cols), sat


def _slow_block(path: Path, lines: list[str], first_line: int,
                cols: list[int]) -> np.ndarray:
    """Parse line by line, failing on the first bad line with its number."""
    out = np.full((len(lines), len(cols)), np.nan)
    for i, raw in enumerate(lines):
        lineno = first_line + i
        cells = raw.rstrip("\r\n").split(",")
        if len(cells) < 7:
            raise RecordingError(f"{path}:{lineno}: {len(cells)} columns, expected at least 7 "
                                 f"(t,ax,ay,az,gx,gy,gz)")
        for j, col in enumerate(cols):
            cell = cells[col].strip() if col < len(cells) else ""
            if cell == "":
                if j < 4:
                    raise RecordingError(f"{path}:{lineno}: column {HEADER[j]} is empty; "
                                         "t and ax..az are required")
                continue
            try:
                out[i, j] = float(cell)
            except ValueError:
                name = HEADER[j] if j < 7 else f"column {col + 1}"
                raise RecordingError(f"{path}:{lineno}: {name} is {cell[:20]!r}, not a "
                                     "number") from None
    return out


def _fill_empty(lines: list[str]) -> str:
    """Empty cells (accelerometer-only rows) become 'nan', so the C parser takes them."""
    text = "".join(lines)
    if ",," in text or ",\n" in text or ",\r" in text:
        text = text.replace(",,", ",nan,").replace(",,", ",nan,")
        text = text.replace(",\r\n", ",nan\n").replace(",\n", ",nan\n")
        if text.endswith(","):
            text += "nan"
    return text


def _blocks(fh: io.TextIOBase, path: Path, cols: list[int]) -> Iterator[np.ndarray]:
    lineno = 2
    while True:
        lines = fh.readlines(BLOCK_LINES * 60)
        if not lines:
            return
        try:
            arr = np.loadtxt(io.StringIO(_fill_empty(lines)), delimiter=",", usecols=cols,
                             ndmin=2, dtype=float)
            if arr.shape[0] != len(lines) or np.isnan(arr[:, :4]).any():
                raise ValueError("blank lines or empty required cells")
        except ValueError:
            arr = _slow_block(path, lines, lineno, cols)
        yield arr
        lineno += len(lines)


def read_csv(path: str | Path) -> SampleChunk:
    """Read a DESIGN A1 CSV (or .csv.gz) into one SampleChunk.

    Raises RecordingError naming the line for a bad header, a malformed row or a time
    that does not increase. Empty gyro columns mean an accelerometer-only recording.
    """
    p = Path(path)
    with _open(p) as fh:
        try:
            header = fh.readline()
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise RecordingError(f"{p}: corrupt or not a CSV ({exc})") from None
        if not header:
            raise RecordingError(f"{p}: empty file; expected the header "
                                 f"'{','.join(HEADER)}'")
        _ncols, sat_col = _check_header(p, header)
        try:
            cols = list(range(7)) + ([sat_col] if sat_col is not None else [])
            parts = list(_blocks(fh, p, cols))
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise RecordingError(f"{p}: corrupt or truncated ({exc})") from None
    data = np.concatenate(parts) if parts else np.zeros((0, 8))
    t = data[:, 0]
    if len(t) == 0:
        raise RecordingError(f"{p}: no data rows after the header")
    bad_t = ~np.isfinite(t)
    if bad_t.any():
        i = int(np.flatnonzero(bad_t)[0])
        raise RecordingError(f"{p}:{i + 2}: t is {t[i]}, not a finite time")
    dt = np.diff(t)
    if (dt <= 0).any():
        i = int(np.flatnonzero(dt <= 0)[0]) + 1
        raise RecordingError(f"{p}:{i + 2}: t={t[i]:.6f} is not after the previous "
                             f"t={t[i - 1]:.6f}; times must increase (sort or split the file)")
    gyro_cols = data[:, 4:7]
    has_gyro = bool(np.isfinite(gyro_cols).any())
    gyro = gyro_cols.copy() if has_gyro else None
    saturated = None
    if sat_col is not None:
        saturated = np.nan_to_num(data[:, 7]) != 0
    return SampleChunk(t.copy(), np.ascontiguousarray(data[:, 1:4]), gyro, saturated)


def parse_window(text: str) -> tuple[float, float]:
    """'START:END' in seconds of the file's time base."""
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"--calibrate {text!r}: expected START:END in seconds, "
                         "e.g. 2:12") from None
    if not (math.isfinite(a) and math.isfinite(b)) or b - a < 1.0:
        raise ValueError(f"--calibrate {text!r}: END must be at least 1 s after START")
    return a, b


def replay(source: str | Path | SampleChunk, cfg: Config | None = None, *,
           calibrate: tuple[float, float] | None = None,
           calibration: Calibration | None = None, chunk_size: int | None = None,
           states: bool = False) -> list[dict[str, Any]]:
    """Run a recording through the pipeline; return all records in order.

    ``chunk_size`` feeds the samples in pieces of that many (as the live loop does);
    the result is the same as feeding everything at once.
    """
    from spinesense.edge.pipeline import Pipeline

    from spinesense.config import Config as _Config

    cfg = cfg or _Config()
    chunk = source if isinstance(source, SampleChunk) else read_csv(source)
    pipe = Pipeline(cfg, calibration, states=states, calibrate_window=calibrate)
    out: list[dict[str, Any]] = []
    n = len(chunk)
    step = n if not chunk_size else int(chunk_size)
    for i in range(0, n, max(step, 1)):
        out += pipe.process(chunk[i:i + step])
    out += pipe.flush()
    return out


def summary(records: list[dict[str, Any]], name: str = "") -> str:
    """The human summary of a replay: calibration, slouching, bouts and breaks."""
    lines = [f"{name}:" if name else "replay:"]
    cal = next((r for r in records if r["type"] == "calibrated"), None)
    if cal is not None:
        conf = f", confidence {cal['confidence']}" if "confidence" in cal else ""
        lines.append(f"  calibrated at t={cal['t']:g} s: upright from {cal['method']}, "
                     f"forward axis {cal['forward_method']}{conf}")
    else:
        lines.append("  calibration: stored")
    ends = [r for r in records if r["type"] == "slouch_end"]
    slouched = sum(r["t"] - r["alert_t"] for r in ends)
    lines.append(f"  slouch episodes: {len(ends)} ({slouched / 60:.1f} min slouched after "
                 "the alerts)")
    for r in ends[:20]:
        lines.append(f"    onset {r['onset']:9.2f} s  alert {r['alert_t']:9.2f} s  "
                     f"end {r['t']:9.2f} s  peak {r['peak_deg']:5.1f}°  "
                     f"mean {r['mean_deg']:5.1f}°")
    if len(ends) > 20:
        lines.append(f"    ... {len(ends) - 20} more (use --jsonl)")
    alerts = [r for r in records if r["type"] == "sitting_alert"]
    reminders = [r for r in records if r["type"] == "sitting_reminder"]
    breaks = [r for r in records if r["type"] == "sitting_break"]
    lines.append(f"  sitting alerts: {len(alerts)}, reminders: {len(reminders)}")
    lines.append(f"  sitting bouts ended by a break: {len(breaks)}")
    for r in breaks[:20]:
        lines.append(f"    bout {r['bout_start']:9.1f} s to {r['bout_end']:9.1f} s "
                     f"({r['bout_s'] / 60:.1f} min), break recognised at {r['t']:.1f} s")
    metrics = [r for r in records if r["type"] == "metric"]
    if metrics:
        total = {p: sum(m[f"{p}_s"] for m in metrics)
                 for p in ("sitting", "standing", "walking", "lying", "unknown")}
        lines.append("  time: " + ", ".join(f"{p} {s / 60:.1f} min" for p, s in total.items()))
        lines.append(f"  steps: {sum(m['steps'] for m in metrics)}")
    stale = [r for r in records if r["type"] == "calibration_stale"]
    if stale:
        lines.append(f"  calibration looks stale from t={stale[0]['t']:g} s (walking "
                     f"{stale[0]['angle_deg']}° from upright): recalibrate")
    gaps = [r for r in records if r["type"] == "gap"]
    if gaps:
        lines.append(f"  gaps: {len(gaps)} ({sum(g['duration_s'] for g in gaps):.1f} s)")
    return "\n".join(lines)
