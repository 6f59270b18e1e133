"""`spinesense report`: a self-contained HTML page with PNG plots of a day (or a range).

Plots are drawn with matplotlib's Agg backend (no display needed) and embedded as
``data:`` URIs, so the page is one file that can be mailed or opened offline. The same
page comes from InfluxDB (device + range) or from a recording replayed through the
pipeline; see :mod:`spinesense.analysis.dataset`.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never needs a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from spinesense import __version__
from spinesense.analysis.dataset import Dataset
from spinesense.analysis.report_time import Clock
from spinesense.config import Config

POSTURE_COLORS = {"sitting": "#e07b39", "standing": "#3b8bc2", "walking": "#3aa57a",
                  "lying": "#8a6bbf", "unknown": "#c8c8c8"}
SLOUCH_COLOR = "#d9534f"
ALERT_TYPES = ("slouch_start", "sitting_alert", "sitting_reminder")


@dataclass
class Summary:
    """The day's numbers (for the whole range of the dataset)."""

    hours_of_data: float
    slouch_episodes: int
    minutes_slouched: float
    pct_slouched: float
    minutes_sitting: float
    sedentary_bouts: int
    longest_bout_min: float
    bouts_over_limit: int
    alerts: int
    sitting_alerts: int
    breaks: int
    steps: int


def bouts(ds: Dataset) -> np.ndarray:
    """Sedentary bout lengths in seconds: those ended by a break, plus one still running."""
    done = [e["bout_end"] - e["bout_start"] for e in ds.of_type("sitting_break")
            if e.get("bout_end") is not None and e.get("bout_start") is not None]
    running = ds.column("bout_s")
    if len(running) and running[-1] > 0:
        done.append(float(running[-1]))
    return np.asarray(done, float)


def summarize(ds: Dataset, cfg: Config) -> Summary:
    interval = ds.column("interval_s").sum()
    slouch_s = ds.column("slouch_s").sum()
    lengths = bouts(ds)
    longest = max(float(lengths.max()) if len(lengths) else 0.0,
                  float(ds.column("bout_s").max()) if len(ds.metrics["t"]) else 0.0)
    return Summary(
        hours_of_data=float(interval / 3600),
        slouch_episodes=len(ds.of_type("slouch_start")),
        minutes_slouched=float(slouch_s / 60),
        pct_slouched=float(100 * slouch_s / interval) if interval else 0.0,
        minutes_sitting=float(ds.column("sitting_s").sum() / 60),
        sedentary_bouts=len(lengths),
        longest_bout_min=longest / 60,
        bouts_over_limit=int((lengths >= cfg.sitting.limit_min * 60).sum()),
        alerts=len(ds.of_type(*ALERT_TYPES)),
        sitting_alerts=len(ds.of_type("sitting_alert")),
        breaks=len(ds.of_type("sitting_break")),
        steps=round(ds.column("steps").sum()),
    )


# ------------------------------------------------------------------------------ time axis

def slouch_spans(ds: Dataset) -> list[tuple[float, float]]:
    """(onset, end) of each slouch episode; one still open at the end runs to the end."""
    ends = np.array(sorted(e["t"] for e in ds.of_type("slouch_end")), float)
    spans = []
    for e in ds.of_type("slouch_start"):
        onset = e.get("onset", e["t"])
        i = np.searchsorted(ends, e["t"], side="left")
        spans.append((onset, float(ends[i]) if i < len(ends) else ds.end))
    return spans


def runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop indices of runs of equal values (vectorised)."""
    if len(values) == 0:
        return np.array([], int), np.array([], int)
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    return np.r_[0, change], np.r_[change, len(values)]


# ----------------------------------------------------------------------------- figures


def _fig(height: float) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(11, height), dpi=110, layout="constrained")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    return fig, ax


def plot_flexion(ds: Dataset, cfg: Config, clock: Clock) -> Figure:
    fig, ax = _fig(3.4)
    # break the line where data is missing, rather than drawing across the hole
    holes = np.flatnonzero(np.diff(ds.line_t) > 3 * ds.resolution_s) + 1
    x = np.insert(clock(ds.line_t), holes, np.nan)
    flex = np.insert(ds.line_flexion.astype(float), holes, np.nan)
    for onset, end in slouch_spans(ds):
        ax.axvspan(clock(onset), clock(end), color=SLOUCH_COLOR, alpha=0.18, linewidth=0)
    ax.plot(x, flex, color="#2f4f6f", linewidth=0.6, label="flexion")
    alerts = [e["t"] for e in ds.of_type("slouch_start")]
    thr = cfg.slouch.threshold_deg
    ax.axhline(thr, color=SLOUCH_COLOR, linestyle="--", linewidth=1.2,
               label=f"threshold {thr:g}°")
    ax.axhline(cfg.slouch.release_deg, color=SLOUCH_COLOR, linestyle=":", linewidth=1,
               label=f"release {cfg.slouch.release_deg:g}°")
    ax.axhline(0, color="#888888", linewidth=0.6)
    finite = flex[np.isfinite(flex)]
    hi = max(thr + 10, float(np.percentile(finite, 99.5)) + 5 if len(finite) else thr + 10)
    lo = min(-10.0, float(np.percentile(finite, 0.5)) - 5 if len(finite) else -10.0)
    ax.set_ylim(lo, hi)
    _mark_clipped(ax, x, flex, lo, hi)
    if alerts:
        ax.plot(clock(alerts), np.full(len(alerts), hi), "v", color=SLOUCH_COLOR,
                markersize=5, clip_on=False, label="slouch alert")
    ax.set_ylabel("flexion past upright (°)")
    ax.set_xlabel(clock.label)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(plt.Rectangle((0, 0), 1, 1, color=SLOUCH_COLOR, alpha=0.25))
    labels.append("slouch episode")
    ax.legend(handles, labels, loc="lower right", bbox_to_anchor=(1.0, 1.02), ncols=5,
              frameon=False, fontsize=8, borderaxespad=0)
    clock.format_axis(ax)
    return fig


def _mark_clipped(ax: Any, x: np.ndarray, flex: np.ndarray, lo: float, hi: float) -> None:
    """Flexion past the axis limits is not hidden: one marker per run of clipped points
    at the edge, with the extreme value in the legend."""
    pad = 0.035 * (hi - lo)
    with np.errstate(invalid="ignore"):
        for mask, y, marker, word in ((flex > hi, hi - pad, "^", "above"),
                                      (flex < lo, lo + pad, "v", "below")):
            if not mask.any():
                continue
            first = mask & ~np.r_[False, mask[:-1]]
            extreme = np.nanmax(flex[mask]) if word == "above" else np.nanmin(flex[mask])
            ax.plot(x[first], np.full(int(first.sum()), y), marker, color="#2f4f6f",
                    markersize=4, linestyle="none",
                    label=f"{word} the scale (to {extreme:.0f}°)")


def plot_timeline(ds: Dataset, clock: Clock) -> Figure:
    fig, ax = _fig(2.5)
    rows = ["unknown", "lying", "walking", "standing", "sitting"]
    half = ds.resolution_s / 2
    # a bar never spans a hole in the data (a night between two days of a recording)
    segment = np.cumsum(np.r_[0, np.diff(ds.line_t) > 3 * ds.resolution_s])
    codes = np.array([rows.index(p) if p in rows else -1 for p in ds.line_posture])
    starts, stops = runs(codes * (len(ds.line_t) + 1) + segment)
    for a, b in zip(starts, stops, strict=True):
        posture = ds.line_posture[a]
        if posture not in rows:
            continue
        x0 = clock(ds.line_t[a] - half)
        x1 = clock(ds.line_t[b - 1] + half)
        ax.broken_barh([(x0, x1 - x0)], (rows.index(posture) - 0.38, 0.76),
                       color=POSTURE_COLORS[posture], linewidth=0)
    alerts = [e["t"] for e in ds.of_type("sitting_alert", "sitting_reminder")]
    if alerts:
        ax.plot(clock(alerts), np.full(len(alerts), rows.index("sitting") + 0.52),
                "v", color=SLOUCH_COLOR, markersize=6, label="sitting alert or reminder",
                clip_on=False)
    breaks = [e["t"] for e in ds.of_type("sitting_break")]
    if breaks:
        ax.plot(clock(breaks), np.full(len(breaks), rows.index("standing") + 0.5), "|",
                color="#1d6fa5", markersize=9, label="break", clip_on=False)
    if alerts or breaks:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.02), ncols=2, frameon=False,
                  fontsize=8, borderaxespad=0)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.grid(False)
    ax.set_xlabel(clock.label)
    clock.format_axis(ax)
    return fig


HOURLY_MAX_DAYS = 7  # longer ranges get one bar per day


def hourly(ds: Dataset, clock: Clock) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """Minutes per bin of each metric column. Bins are clock hours (days for ranges over
    a week): on the wall clock in the report's time zone when the data has dates, else
    counted from the start. Returns each bin's start (dataset seconds; bins with data
    only), the minutes per bin, and the bin width in seconds."""
    span_days = (ds.end - ds.start) / 86400
    width_s = 3600.0 if span_days <= HOURLY_MAX_DAYS else 86400.0
    starts = clock.hour_start(ds.metrics["t"] - ds.column("interval_s") / 2, width_s)
    bins, idx = np.unique(starts, return_inverse=True)
    out = {name: np.bincount(idx, ds.column(name), len(bins)) / 60
           for name in ("slouch_s", "sitting_s", "standing_s", "walking_s", "interval_s")}
    return bins, out, width_s


def plot_hourly(ds: Dataset, clock: Clock) -> Figure:
    """Each bar fills its own hour (from one hour mark to the next): minutes sitting,
    and over it, narrower, minutes slouched; one hour reads as one bin."""
    fig, ax = _fig(3.0)
    bins, minutes, width_s = hourly(ds, clock)
    left, right = clock(bins), clock(bins + width_s)
    w = right - left
    ax.bar(left + w * 0.04, minutes["sitting_s"], width=w * 0.92, align="edge",
           color=POSTURE_COLORS["sitting"], label="sitting")
    ax.bar(left + w * 0.25, minutes["slouch_s"], width=w * 0.5, align="edge",
           color=SLOUCH_COLOR, label="slouched")
    ax.set_ylabel("minutes per hour" if width_s == 3600 else "minutes per day")
    ax.set_xlabel(clock.label)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.02), ncols=2, frameon=False,
              fontsize=8, borderaxespad=0)
    clock.format_axis(ax)
    lo, hi = ax.get_xlim()
    ax.set_xlim(min(lo, float(left[0])), max(hi, float(right[-1])))
    if len(bins) <= 72:  # a light mark on every hour mark the bars sit between
        ax.set_xticks(np.union1d(left, right), minor=True)
        ax.tick_params(axis="x", which="minor", length=3)
    return fig


def png_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# -------------------------------------------------------------------------------- page

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
margin:0;background:#f4f5f7;color:#1f2a36}
main{max-width:1240px;margin:0 auto;padding:24px 28px 40px}
header h1{margin:0 0 4px;font-size:26px}
header p{margin:0;color:#5b6776}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px;
margin:20px 0}
.card{background:#fff;border-radius:10px;padding:12px 16px;box-shadow:0 1px 3px #0001}
.card .v{font-size:26px;font-weight:650}
.card .l{color:#5b6776;font-size:13px}
.card.warn .v{color:#c9302c}
section{background:#fff;border-radius:10px;padding:14px 18px;margin:14px 0;
box-shadow:0 1px 3px #0001}
section h2{font-size:17px;margin:2px 0 8px}
section p.cap{color:#5b6776;font-size:13px;margin:4px 0 0}
img{width:100%;height:auto;display:block}
table{border-collapse:collapse;font-size:14px;width:100%}
th,td{text-align:right;padding:5px 10px;border-bottom:1px solid #e6e8eb}
th:first-child,td:first-child{text-align:left}
footer{color:#7a8594;font-size:12px;margin-top:18px}
"""


def _card(value: str, label: str, warn: bool = False) -> str:
    cls = "card warn" if warn else "card"
    return (f'<div class="{cls}"><div class="v">{html.escape(value)}</div>'
            f'<div class="l">{html.escape(label)}</div></div>')


def cards(s: Summary, cfg: Config) -> str:
    limit = cfg.sitting.limit_min
    items = [
        (f"{s.pct_slouched:.1f} %", "of the time slouched", s.pct_slouched >= 20),
        (f"{s.minutes_slouched:.0f} min", "slouched", False),
        (str(s.slouch_episodes), "slouch episodes", False),
        (f"{s.minutes_sitting / 60:.1f} h", "sitting", False),
        (str(s.sedentary_bouts), "sedentary bouts", False),
        (f"{s.longest_bout_min:.0f} min", "longest sitting bout", s.longest_bout_min >= limit),
        (str(s.bouts_over_limit), f"bouts of {limit:g} min or more", s.bouts_over_limit > 0),
        (str(s.alerts), "alerts (slouch + sitting)", False),
        (str(s.breaks), "breaks", False),
        (f"{s.steps:,}", "steps", False),
    ]
    return '<div class="cards">' + "".join(_card(*i) for i in items) + "</div>"


def day_table(ds: Dataset, cfg: Config, clock: Clock) -> str:
    """One row per day when the data spans more than one: calendar days in the report's
    time zone when the data has dates, else 24-hour days from the start of the recording."""
    days = clock.day_starts()
    if len(days) < 2:
        return ""
    rows = []
    for label, a, b in days:
        keep = (ds.metrics["t"] > a) & (ds.metrics["t"] <= b)
        if not keep.any():
            rows.append(f'<tr><td>{html.escape(label)}</td><td colspan="8">no data</td></tr>')
            continue
        sub = Dataset(ds.source, ds.device, ds.epoch, a, b,
                      {k: v[keep] for k, v in ds.metrics.items()},
                      [e for e in ds.events if a < e["t"] <= b], ds.line_t, ds.line_flexion,
                      ds.line_posture, ds.resolution_s)
        s = summarize(sub, cfg)
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{s.hours_of_data:.1f}</td>"
                    f"<td>{s.pct_slouched:.1f} %</td><td>{s.slouch_episodes}</td>"
                    f"<td>{s.minutes_sitting / 60:.1f} h</td>"
                    f"<td>{s.longest_bout_min:.0f} min</td><td>{s.alerts}</td>"
                    f"<td>{s.breaks}</td><td>{s.steps:,}</td></tr>")
    head = ("<tr><th>day</th><th>hours of data</th><th>slouched</th><th>episodes</th>"
            "<th>sitting</th><th>longest bout</th><th>alerts</th><th>breaks</th>"
            "<th>steps</th></tr>")
    return f"<section><h2>Day by day</h2><table>{head}{''.join(rows)}</table></section>"


def render(ds: Dataset, cfg: Config, *, tz: tzinfo = UTC, title: str | None = None) -> str:
    """The whole page as one HTML string."""
    s = summarize(ds, cfg)
    clock = Clock(ds, tz)
    if ds.epoch:
        a = datetime.fromtimestamp(ds.start, tz)
        b = datetime.fromtimestamp(ds.end, tz)
        when = (f"{a:%A %d %B %Y}, {a:%H:%M}–{b:%H:%M} {a.tzname()}" if a.date() == b.date()
                else f"{a:%a %d %b %Y %H:%M} – {b:%a %d %b %Y %H:%M} {a.tzname()}")
    else:
        span_h = (ds.end - ds.start) / 3600
        when = (f"{span_h:.1f} h recording" if span_h <= 24 else
                f"{span_h:.1f} h recording over {len(clock.day_starts())} days")
    who = f"device {ds.device}" if ds.device else ds.source
    several = len(clock.day_starts()) > 1
    title = title or ("spinesense report" if several else "spinesense daily report")
    hourly_bins = (ds.end - ds.start) / 86400 <= HOURLY_MAX_DAYS
    figures = [
        ("Flexion over the days" if several else "Flexion over the day",
         plot_flexion(ds, cfg, clock),
         "Forward flexion of the upper back past the calibrated upright posture. Shaded: "
         "slouch episodes (from the moment flexion crossed the threshold to the release). "
         "The scale ends a little past the day's extremes; the rare values beyond it are "
         "marked at its edge, with the most extreme one in the legend."),
        ("What you were doing", plot_timeline(ds, clock),
         "Posture as the pipeline inferred it (sitting vs standing is inferred from "
         "movement and transitions, not measured directly). Unknown (grey): upright, "
         "but no sit-down, stand-up or walk seen yet since the data started or resumed "
         "after a gap, so sitting and standing cannot be told apart and the pipeline "
         "does not guess; this is why the first minutes of a day are often unknown."),
        ("Hour by hour" if hourly_bins else "Minutes per day", plot_hourly(ds, clock),
         ("Each bar fills its hour, from one hour mark to the next: minutes sitting, and "
          "over it (narrower) minutes slouched in that hour." if hourly_bins else
          "Each bar fills its day: minutes sitting, and over it (narrower) minutes "
          "slouched that day.")),
    ]
    sections = "".join(
        f'<section><h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" '
        f'src="{png_uri(fig)}"><p class="cap">{html.escape(cap)}</p></section>'
        for name, fig, cap in figures)
    notes = "".join(f"<br>{html.escape(n)}" for n in ds.notes)
    settings = (f"slouch: {cfg.slouch.threshold_deg:g}° for {cfg.slouch.delay_s:g} s, "
                f"release {cfg.slouch.release_deg:g}°; sitting limit "
                f"{cfg.sitting.limit_min:g} min, break {cfg.sitting.break_s:g} s")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · {html.escape(who)}</title>
<style>{CSS}</style></head>
<body><main>
<header><h1>{html.escape(title)}</h1>
<p>{html.escape(who)} · {html.escape(when)} · {s.hours_of_data:.1f} h of data</p></header>
{cards(s, cfg)}
{sections}
{day_table(ds, cfg, clock)}
<footer>Source: {html.escape(ds.source)}. Settings: {html.escape(settings)}.{notes}
<br>Generated by spinesense {__version__} on {generated}.</footer>
</main></body></html>
"""


def summary_dict(ds: Dataset, cfg: Config) -> dict[str, Any]:
    return asdict(summarize(ds, cfg))
