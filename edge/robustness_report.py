"""The robust suite's report: distributions over runs, pooled figures, breakdowns by
condition and the worst seeds (see `spinesense.edge.robustness`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spinesense.edge.robustness import REFERENCE, TARGETS, RobustRun


@dataclass
class Distribution:
    name: str
    kind: str
    threshold: float
    required: Any
    description: str
    runs: int
    worst: float
    p5: float
    median: float
    share_ok: float

    @property
    def passed(self) -> bool:
        if self.runs == 0:
            return True
        if self.required == "median":
            return self.median <= self.threshold if self.kind == "max" else \
                self.median >= self.threshold
        return self.share_ok >= self.required - 1e-12


def distributions(runs: list[RobustRun]) -> list[Distribution]:
    """Per metric: worst run, 5th percentile on the bad side, median, share meeting the
    target, over the runs where the metric is defined."""
    out = []
    for name, kind, thr, req, desc in TARGETS + REFERENCE:
        vals = np.array([r.metrics.get(name, math.nan) for r in runs], float)
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            out.append(Distribution(name, kind, thr, req, desc, 0, *(math.nan,) * 4))
            continue
        ok = vals >= thr if kind == "min" else vals <= thr
        worst = vals.min() if kind == "min" else vals.max()
        p5 = np.percentile(vals, 5 if kind == "min" else 95)
        out.append(Distribution(name, kind, thr, req, desc, len(vals), float(worst),
                                float(p5), float(np.median(vals)), float(ok.mean())))
    return out


def pooled(runs: list[RobustRun]) -> str:
    """Figures pooled over all runs (sums of counts), beside the per-run distribution."""
    tot = {k: sum(r.metrics.get(k, 0) for r in runs) for k in (
        "n_slouch_tp", "n_slouch_det", "n_slouch_truth", "n_false", "n_sit_tp",
        "n_sit_truth", "n_brk_tp", "n_brk_truth", "sed_h")}
    p = tot["n_slouch_tp"] / tot["n_slouch_det"] if tot["n_slouch_det"] else math.nan
    r = tot["n_slouch_tp"] / tot["n_slouch_truth"] if tot["n_slouch_truth"] else math.nan
    f1 = 2 * p * r / (p + r) if p + r > 0 else math.nan
    sit = tot["n_sit_tp"] / tot["n_sit_truth"] if tot["n_sit_truth"] else math.nan
    brk = tot["n_brk_tp"] / tot["n_brk_truth"] if tot["n_brk_truth"] else math.nan
    per_h = tot["n_false"] / tot["sed_h"] if tot["sed_h"] else math.nan
    return (f"pooled over all runs: slouch precision {_fmt(p)}, recall {_fmt(r)}, F1 "
            f"{_fmt(f1)} ({int(tot['n_slouch_truth'])} episodes); false alerts "
            f"{per_h:.2f} per sitting hour; sitting-alert recall {_fmt(sit)} "
            f"({int(tot['n_sit_truth'])}); break recall {_fmt(brk)} "
            f"({int(tot['n_brk_truth'])})")


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"


def format_report(runs: list[RobustRun], *, worst: int = 3) -> str:
    """The distribution table, a breakdown by day type, and the worst seeds per failing
    metric (with the command that reproduces each)."""
    dists = distributions(runs)
    head = ["metric", "target", "runs", "worst", "p5", "median", "share ok", "verdict"]
    rows = [head]
    for d in dists:
        if d.name in (n for n, *_ in REFERENCE):
            rows.append([f"({d.name})", "reference", str(d.runs), _fmt(d.worst), _fmt(d.p5),
                         _fmt(d.median), f"{d.share_ok:.1%}" if d.runs else "-", ""])
            continue
        sign = ">=" if d.kind == "min" else "<="
        need = "median" if d.required == "median" else f"{d.required:.0%} of runs"
        rows.append([d.name, f"{sign} {d.threshold:g} in {need}", str(d.runs), _fmt(d.worst),
                     _fmt(d.p5), _fmt(d.median), "-" if d.runs == 0 else f"{d.share_ok:.1%}",
                     "n/a" if d.runs == 0 else ("ok" if d.passed else "FAIL")])
    lines = [_table(rows), pooled(runs)]
    failed = [r for r in runs if r.calibrated.startswith("failed:")]
    if failed:
        kinds = sorted({r.stamps for r in failed})
        lines.append(f"{len(failed)} of {len(runs)} days failed to replay (counted as failing "
                     f"every target; timestamps {', '.join(kinds)}), e.g. seed "
                     f"{failed[0].seed}: {failed[0].calibrated}")
    lines += ["", "by condition (share of runs meeting the target, and runs):"]
    keys = ["slouch_f1", "forward_corr", "sit_recall", "walk_acc", "sitstand_acc"]
    rows = [["day", "runs", *keys]]
    for day in sorted({r.day for r in runs}):
        sub = [r for r in runs if r.day == day]
        rows.append([day, str(len(sub)), *[_share(sub, k) for k in keys]])
    groups: list[tuple[str, Any]] = [
        ("facing", lambda r: r.facing), ("accel-only", lambda r: r.accel_only),
        ("slip", lambda r: r.slip), ("stamps", lambda r: r.stamps),
        ("rate", lambda r: "25-49 Hz" if r.rate_hz < 50 else
         ("50-149 Hz" if r.rate_hz < 150 else "150-400 Hz"))]
    for label, key in groups:
        for value in sorted({key(r) for r in runs}, key=str):
            sub = [r for r in runs if key(r) == value]
            rows.append([f"{label}={value}", str(len(sub)), *[_share(sub, k) for k in keys]])
    lines.append(_table(rows))
    for d in dists:
        if d.runs == 0 or d.passed or d.name in (n for n, *_ in REFERENCE):
            continue
        name, kind = d.name, d.kind
        bad = sorted((r for r in runs if math.isfinite(r.metrics.get(name, math.nan))),
                     key=lambda r: r.metrics[name] * (1 if kind == "min" else -1))[:worst]
        lines.append(f"worst {name}:")
        for r in bad:
            lines.append(f"  {r.metrics[name]:.3f}  seed {r.seed} {r.day}, {r.facing}, "
                         f"{r.rate_hz:g} Hz{', accel-only' if r.accel_only else ''}, "
                         f"stamps {r.stamps}{', slip' if r.slip else ''}, {r.minutes} min; "
                         f"calibrated: {r.calibrated or '-'}")
    return "\n".join(lines)


def _share(runs: list[RobustRun], name: str) -> str:
    kind, thr = next((k, t) for n, k, t, *_ in TARGETS if n == name)
    vals = np.array([r.metrics.get(name, math.nan) for r in runs], float)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return "-"
    return f"{(vals >= thr if kind == 'min' else vals <= thr).mean():.0%} ({len(vals)})"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     for r in rows)
