"""The report's time axis: dates where the data has them, elapsed time where it does not,
and nights without data left out of multi-day plots.

Every plot maps dataset seconds through one :class:`Clock`, so flexion, posture, slouch
spans, alerts and hour bars stay aligned whatever the axis does. Nothing wraps: clock
times carry their date where the day changes, and elapsed time counts hours past 24 (and
days past 48 h) instead of inventing a 1970 date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import matplotlib.dates as mdates
import matplotlib.ticker as ticker
import numpy as np

from spinesense.analysis.dataset import Dataset

GAP_LEFT_OUT_S = 3 * 3600.0  # over two to seven days, stretches without data this long
GAP_WIDTH = 0.05  # are left out of the axis, drawn as a hatched band this share of it
LEAVE_OUT_MAX_DAYS = 7  # longer ranges (one bar per day) keep a continuous axis
TICK_STEPS_H = (1 / 6, 0.25, 0.5, 1, 2, 3, 4, 6, 12, 24, 48, 168, 336)


class Clock:
    """Maps dataset seconds to axis positions (in days), and labels the axis.

    Data with dates (InfluxDB, or a recording stamped in Unix time) is shown as wall time
    in ``tz``; other recordings as time since their start. Over more than one day, hours
    without data between the stretches that have it (nights) are left out: each stretch,
    widened to whole hours, keeps its true scale, and a narrow hatched band stands for
    each gap."""

    def __init__(self, ds: Dataset, tz: tzinfo = UTC):
        self.ds, self.tz = ds, tz
        self.span_h = (ds.end - ds.start) / 3600
        offset = datetime.fromtimestamp(ds.start, tz).utcoffset() if ds.epoch else None
        # "local" seconds: wall time in tz as if it were UTC (dates), or since the start
        self.shift = (offset or timedelta()).total_seconds() if ds.epoch else -ds.start
        if ds.epoch:
            self.label = f"date and time ({_tzname(tz, ds.start)})"
        elif self.span_h > 48:
            self.label = "time since the start of the recording (day and h:mm)"
        else:
            self.label = "time since the start of the recording (h:mm)"
        self.segments = self._segments()
        self.compressed = len(self.segments) > 1
        if self.compressed:
            self.label += "; hours without data left out (hatched)"
            seg_days = sum(b - a for a, b in self.segments) / 86400
            share = min(GAP_WIDTH, 0.3 / (len(self.segments) - 1))  # of the whole axis
            gap = share * seg_days / (1 - share * (len(self.segments) - 1))
            knots_t, knots_x, x = [], [], 0.0
            for a, b in self.segments:
                knots_t += [a, b]
                knots_x += [x, x + (b - a) / 86400]
                x += (b - a) / 86400 + gap
            self._t, self._x = np.array(knots_t), np.array(knots_x)

    def _segments(self) -> list[tuple[float, float]]:
        """Stretches with data, widened to whole local hours; one stretch (no leaving
        out) unless the data spans two to seven days with gaps of GAP_LEFT_OUT_S or more."""
        ds = self.ds
        whole = [(self._floor_h(ds.start), self._ceil_h(ds.end))]
        if not 2 <= len(self.day_starts()) <= LEAVE_OUT_MAX_DAYS:
            return whole
        times = np.sort(np.r_[ds.line_t, ds.metrics["t"] - ds.column("interval_s"),
                              ds.metrics["t"]])
        cut = np.flatnonzero(np.diff(times) >= GAP_LEFT_OUT_S)
        if not len(cut):
            return whole
        starts, ends = np.r_[times[0], times[cut + 1]], np.r_[times[cut], times[-1]]
        out: list[tuple[float, float]] = []
        for a, b in zip(starts, ends, strict=True):
            a, b = self._floor_h(a), self._ceil_h(b)
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out

    def _floor_h(self, t: float) -> float:
        return float(np.floor((t + self.shift) / 3600) * 3600 - self.shift)

    def _ceil_h(self, t: float) -> float:
        return float(np.ceil((t + self.shift) / 3600) * 3600 - self.shift)

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, float)
        if self.compressed:
            return np.interp(t, self._t, self._x)
        return (t + self.shift) / 86400.0  # with dates: matplotlib's epoch is 1970-01-01

    def hour_start(self, t: np.ndarray, width_s: float = 3600.0) -> np.ndarray:
        """The start (dataset seconds) of the clock hour (or day) each time falls in."""
        return np.floor((t + self.shift) / width_s) * width_s - self.shift

    def day_starts(self) -> list[tuple[str, float, float]]:
        """(label, start, end) in dataset seconds of each day the data touches: calendar
        days in ``tz`` with dates, else 24-hour days counted from the start."""
        out = []
        if self.ds.epoch:
            day = datetime.fromtimestamp(self.ds.start, self.tz).replace(
                hour=0, minute=0, second=0, microsecond=0)
            while day.timestamp() < self.ds.end:
                nxt = day + timedelta(days=1)  # wall-clock arithmetic: DST-safe
                out.append((f"{day:%a %d %b %Y}", day.timestamp(), nxt.timestamp()))
                day = nxt
        else:
            n = 0
            while self.ds.start + n * 86400 < self.ds.end:
                a = self.ds.start + n * 86400
                out.append((f"day {n + 1} ({24 * n}–{24 * (n + 1)} h)", a, a + 86400))
                n += 1
        return out

    def format_axis(self, ax: Any) -> None:
        if self.compressed:
            self._format_compressed(ax)
            return
        if self.ds.epoch:
            locator = mdates.AutoDateLocator(minticks=4, maxticks=12)
            fmt = mdates.ConciseDateFormatter(
                locator, formats=["%Y", "%b", "%a %d %b", "%H:%M", "%H:%M", "%S.%f"],
                zero_formats=["", "%Y", "%b", "%a %d %b", "%H:%M", "%H:%M"],
                offset_formats=["", "%Y", "%b %Y", "%a %d %b %Y", "%a %d %b %Y",
                                "%a %d %b %Y %H:%M"])
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(fmt)
        else:
            step_h = next((h for h in TICK_STEPS_H if self.span_h / h <= 12), 672)
            ax.xaxis.set_major_locator(ticker.MultipleLocator(step_h / 24))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(
                lambda x, _pos: self._text(x * 86400, first=self.span_h > 48)))
        ax.set_xlim(self(self.ds.start), self(self.ds.end))

    def _format_compressed(self, ax: Any) -> None:
        """Ticks on whole steps of local time inside each stretch (the first one of a
        stretch says which day), and a hatched band for each left-out gap."""
        shown_h = sum(b - a for a, b in self.segments) / 3600
        # each stretch's first (dated) label is wide: fewer plain ticks the more stretches
        room = max(3, 16 - 2 * len(self.segments))
        step = 3600 * next((h for h in TICK_STEPS_H if shown_h / h <= room), 672)
        ticks, labels = [], []
        last = len(self.segments) - 1
        for i, (a, b) in enumerate(self.segments):
            # a stretch's end tick would crowd the next stretch's first (dated) one
            end = b + self.shift + (1 if i == last else -1)
            local = np.arange(np.ceil((a + self.shift) / step) * step, end, step)
            if not len(local):  # a stretch shorter than the step still says its day
                local = np.array([a + self.shift])
            for j, lt in enumerate(local):
                ticks.append(float(self(lt - self.shift)))
                labels.append(self._text(lt, first=j == 0))
            if i:
                ax.axvspan(float(self(self.segments[i - 1][1])), float(self(a)),
                           facecolor="#f2f2f2", edgecolor="#b0b0b0", hatch="///",
                           linewidth=0, zorder=0)
        ax.set_xticks(ticks, labels)
        ax.set_xlim(float(self(self.segments[0][0])), float(self(self.segments[-1][1])))

    def _text(self, local_s: float, *, first: bool) -> str:
        """A tick label for local seconds: the time, and under it the day ('Tue 24 Nov')
        on the first tick of a stretch or of a new day (a second line, so that it may run
        under its neighbours' times); elapsed h:mm (days past 48 h) without dates."""
        if self.ds.epoch:
            when = datetime.fromtimestamp(local_s, UTC)
            new_day = first or (when.hour == 0 and when.minute == 0)
            return f"{when:%H:%M}\n{when:%a %d %b}" if new_day else f"{when:%H:%M}"
        minutes = round(local_s / 60)
        h, m = divmod(minutes, 60)
        if self.span_h <= 48:
            return f"{h}:{m:02d}"
        d, h = divmod(h, 24)
        return f"{h}:{m:02d}\nday {d + 1}" if first or (h == 0 and m == 0) else f"{h}:{m:02d}"


def _tzname(tz: tzinfo, t: float) -> str:
    return datetime.fromtimestamp(t, tz).tzname() or str(tz)
