"""`spinesense tune`: sweep thresholds over labelled recordings and recommend a setting.

This module is the command: labels are loaded and checked against each recording
(:mod:`spinesense.analysis.tune_checks`), the settings are swept and scored
(:mod:`spinesense.analysis.tune_sweep`), and the tables, plots and TOML snippet are
written (:mod:`spinesense.analysis.tune_output`). Nothing is recommended that could
mislead: see :func:`main`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinesense.analysis.dataset import Labels, load_labels_csv, load_truth, truth_path
from spinesense.analysis.tune_checks import (
    TuneError,
    check_agreement,
    check_made_for,
    check_sitting_grid,
    check_slouch_grid,
    check_snippet,
    check_span,
)
from spinesense.analysis.tune_output import plot_sitting, plot_slouch, snippet, write_table
from spinesense.analysis.tune_sweep import (
    Episodes,
    MetricFeatures,
    PipelineFeatures,
    Recording,
    SweepResult,
    compute_features,
    finish_sitting,
    finish_slouch,
    influx_features,
    match_episodes,
    match_times,
    metric_episodes,
    parse_budget,
    parse_range,
    prf,
    recommend,
    score_sitting,
    score_slouch,
    sitting_settings,
    slouch_settings,
    sweep,
)
from spinesense.config import Config
from spinesense.edge.recordings import Units
from spinesense.outputs import output_folder, write_text
from spinesense.parsing import BadValue, parse_window

__all__ = ["Episodes", "MetricFeatures", "PipelineFeatures", "Recording", "SweepResult",
           "TuneError", "compute_features", "finish_sitting", "finish_slouch",
           "influx_features", "main", "match_episodes", "match_times", "metric_episodes",
           "parse_budget", "parse_range", "prf", "recommend", "score_sitting", "score_slouch",
           "sitting_settings", "slouch_settings", "sweep"]

OUTPUT_FILES = {"recommended.toml", "summary.txt", "slouch_sweep.csv", "slouch_tradeoff.png",
                "sitting_sweep.csv", "sitting_tradeoff.png"}


# ---------------------------------------------------------------------------------- main


def _labels_for(args: Any, paths: list[Path]) -> list[Labels]:
    if args.labels:
        files = args.labels
        if len(files) == 1 and len(paths) > 1:
            raise TuneError(f"--labels: give one labels file per recording ({len(paths)}), "
                            "in the same order")
        if len(files) != len(paths):
            raise TuneError(f"--labels: {len(files)} files for {len(paths)} recordings; "
                            "give one per recording, in the same order")
        return [load_labels_csv(f) for f in files]
    if args.truth is None:
        raise TuneError("labels are needed to score settings: --labels LABELS.csv "
                        "(start,end,label) or --truth (the simulator's truth JSON)")
    files = args.truth or [truth_path(p) for p in paths]
    if len(files) != len(paths):
        raise TuneError(f"--truth: {len(files)} files for {len(paths)} recordings; give "
                        "one per recording, or none to use each <name>.truth.json")
    return [load_truth(f) for f in files]


def load_recordings(args: Any, cfg: Config, progress: bool, warnings: list[str]
                    ) -> list[Recording]:
    """Each recording through the pipeline's feature stage, once, and its labels checked
    against it (time range, sample count, agreement with the measured flexion)."""
    from tqdm import tqdm

    paths = [Path(p) for p in args.recordings]
    for p in paths:
        if not p.is_file():
            raise TuneError(f"{p}: recording not found")
    labels = (_labels_for(args, paths) if getattr(args, "feedback", None) is None
              else [Labels(np.zeros((0, 2)))] * len(paths))  # feedback: after the replay
    try:
        given = parse_window(args.calibrate) if args.calibrate else None
    except BadValue as exc:
        raise TuneError(str(exc)) from None
    out = []
    for path, lab in tqdm(list(zip(paths, labels, strict=True)), desc="features",
                          unit="recording", disable=not progress or len(paths) < 2,
                          leave=False):
        window = given
        if window is None and lab.source.endswith(".json"):
            cal = json.loads(Path(lab.source).read_text()).get("calibration") or {}
            if "start" in cal and "end" in cal:
                window = (float(cal["start"]), float(cal["end"]))
        feats = compute_features(path, cfg, calibrate=window,
                                 units=Units.from_args(args))
        f = feats.features
        check_made_for(lab, path.name, f.n_samples, f.t_first, f.t_last)
        check_span(lab, path.name, f.t_first, f.t_last)
        warning = check_agreement(lab, path.name, f.t, f.flexion, cfg.slouch.threshold_deg,
                                  strict=bool(lab.made_for))
        if warning:
            warnings.append("warning: " + warning)
        out.append(Recording(path.name, feats, lab, feats.hours))
    return out


@dataclass
class Source:
    """What the slouch sweep runs over, and what its time resolution allows."""

    recordings: list[Recording]
    run: Callable[[Any, dict[str, float]], Episodes]
    has_labels: bool
    resolution_s: float = 0.0  # metrics interval (InfluxDB); 0: per-tick (recordings)
    note: str = ""


def influx_source(args: Any, cfg: Config) -> Source:
    """The stored metrics of one device: flexion per metrics interval, labels (epoch
    seconds) checked to overlap the range."""
    if args.recordings:
        raise TuneError("--from-influx reads InfluxDB; give no recordings with it")
    if not args.device:
        raise TuneError("--from-influx needs --device (and --from/--to for the range)")
    if args.truth is not None:
        raise TuneError("--from-influx takes --labels (times in UTC epoch seconds), "
                        "not --truth")
    from spinesense.analysis.dataset import DataError, parse_when

    try:
        start = parse_when(args.start) if args.start else None
        end = parse_when(args.end, end=True) if args.end else None
        if start is None or end is None:
            raise TuneError("--from-influx needs --from and --to (the range to tune on)")
        labels = load_labels_csv(args.labels[0]) if args.labels else None
        feats = influx_features(cfg, args.device, start, end)
    except DataError as exc:
        raise TuneError(str(exc)) from None
    if labels is not None:
        first = float(feats.t_end[0] - feats.interval_s[0])
        check_span(labels, f"the metrics of {args.device}", first, float(feats.t_end[-1]),
                   unit="s (UTC epoch seconds)")
    resolution = float(np.median(feats.interval_s)) if len(feats.interval_s) else 10.0
    note = (f"Tuned from InfluxDB metrics alone: the time resolution is the metrics "
            f"interval ({resolution:g} s), so delays shorter than that cannot be told "
            "apart and flexion is the interval mean (short slouches are diluted).")
    rec = Recording(args.device, feats, labels or Labels(np.zeros((0, 2))), feats.hours)
    return Source([rec], metric_episodes, labels is not None, resolution, note)


def main(args: Any, cfg: Config, *, progress: bool = True) -> int:
    """The `spinesense tune` command: sweep, score, plot, recommend, write a snippet.

    Nothing is recommended that could mislead: labels must belong to the recordings, a
    setting must find at least one labelled episode (F1 above 0), and the snippet must
    pass the config schema; otherwise the tables are written and the reason is given."""
    thresholds = parse_range(args.thresholds, "thresholds")
    delays = parse_range(args.delays, "delays")
    budget = parse_budget(args.alert_budget)
    gap = cfg.slouch.threshold_deg - cfg.slouch.release_deg
    check_slouch_grid(thresholds, delays, gap, (args.thresholds, args.delays))
    sitting_grid = _sitting_grid(args, cfg)
    if not (args.from_influx or args.recordings):
        raise TuneError("give one or more recordings (or --from-influx)")
    # before the slow part: a folder that cannot be used is said at once
    out = output_folder(args.out, force=bool(getattr(args, "force", False)))
    warnings: list[str] = []
    if args.from_influx:
        src = influx_source(args, cfg)
    else:
        src = Source(load_recordings(args, cfg, progress, warnings), _run_slouch, True)
    feedback = None
    if getattr(args, "feedback", None) is not None:  # the wearer's feedback as labels
        from spinesense.analysis import feedback_labels as feedback

        feedback.attach(args, cfg, src.recordings)
        src.has_labels = True
    recs, hours = src.recordings, sum(r.hours for r in src.recordings)
    current = {"threshold_deg": cfg.slouch.threshold_deg, "delay_s": cfg.slouch.delay_s,
               "release_deg": cfg.slouch.release_deg}
    rows = sweep(recs, [*slouch_settings(thresholds, delays, gap), current], src.run,
                 feedback.score if feedback else score_slouch, progress=progress,
                 desc="slouch sweep")
    finish_slouch(rows, hours)
    if feedback:
        feedback.finish(rows, hours)
    now_row = rows.pop()
    written = ["slouch_sweep.csv"]
    write_table(out / "slouch_sweep.csv", rows,
                ["threshold_deg", "delay_s", "release_deg", "precision", "recall", "f1",
                 "alerts_per_h", "timing_s", "tp", "n_pred", "found", "n_true"])
    lines = [f"spinesense tune: {len(recs)} recording(s), {hours:.1f} h, "
             f"{len(thresholds)} thresholds x {len(delays)} delays", *warnings]
    if src.note:
        lines.append(src.note)
    if feedback:
        lines.append(feedback.describe(recs))
    best_slouch, refused = _recommend_slouch(src, rows, now_row, budget, cfg, lines)
    if src.has_labels:
        result = SweepResult("slouch", {"threshold_deg": thresholds, "delay_s": delays},
                             rows, hours, src.note)
        if plot_slouch(result, best_slouch, budget, out / "slouch_tradeoff.png"):
            written.append("slouch_tradeoff.png")
        else:
            lines.append("one setting swept: no trade-off plot")
    best_sitting = None
    if sitting_grid is not None:
        best_sitting = _sitting_sweep(sitting_grid, cfg, recs, hours, out, lines, progress,
                                      written)
    if best_slouch or best_sitting:
        header = ([src.note] if src.note else []) + [
            f"spinesense tune over {hours:.1f} h in {len(recs)} recording(s); alert "
            f"budget {budget:g}/h."]
        if best_slouch:
            header.append("slouch: " + _describe(best_slouch))
        text = snippet(best_slouch, best_sitting, header)
        check_snippet(text)
        write_text(out / "recommended.toml", text, force=True)
        written.insert(0, "recommended.toml")
    lines.append(f"wrote {out}/" + ", ".join(written) + ", summary.txt")
    write_text(out / "summary.txt", "\n".join(lines) + "\n", force=True)
    for name in OUTPUT_FILES - {*written, "summary.txt"}:  # an earlier run's (--force)
        (out / name).unlink(missing_ok=True)
    print("\n".join(lines))
    if not (best_slouch or best_sitting) and src.has_labels:
        raise TuneError(f"no recommendation: {refused} (the sweep is in "
                        f"{out}/slouch_sweep.csv)")
    return 0


def _recommend_slouch(src: Source, rows: list[dict[str, float]], now_row: dict[str, float],
                      budget: float, cfg: Config, lines: list[str]
                      ) -> tuple[dict[str, float] | None, str]:
    """The recommended slouch setting, or None and the reason it is refused."""
    if not src.has_labels:
        reason = "without labels only alerts per hour are known"
        lines.append("no labels: only alerts per hour are known (slouch_sweep.csv), so no "
                     "setting is recommended; add --labels to score settings")
        return None, reason
    n_true = int(rows[0]["n_true"])
    lines.append(f"labelled slouch episodes: {n_true}")
    if n_true == 0:
        reason = "the labels have no slouch episodes, so no slouch setting can be scored"
        lines.append("no slouch recommendation: " + reason)
        return None, reason
    candidates = rows
    if src.resolution_s:
        # from metrics, delays under one interval are indistinguishable: never pick one
        resolved = [r for r in rows if r["delay_s"] >= src.resolution_s - 1e-9]
        candidates = resolved or rows
    best, why = recommend(candidates, budget, current=now_row, prefer={
        "threshold_deg": cfg.slouch.threshold_deg, "delay_s": cfg.slouch.delay_s})
    if best["f1"] <= 0 and any(r["f1"] > 0 for r in candidates):
        hours = hours_of(rows)
        reason = (f"settings that find labelled episodes all exceed the alert budget of "
                  f"{budget:g}/h (one alert in {hours:.2g} h of data is "
                  f"{1 / max(hours, 1e-9):.3g}/h): raise --alert-budget or tune on longer "
                  "recordings")
        lines.append("no slouch recommendation: " + reason)
        return None, reason
    if best["f1"] <= 0:
        reason = ("no setting finds any labelled slouch episode (best F1 0.000); check "
                  "that the labels belong to these recordings, in their time base")
        lines.append("no slouch recommendation: " + reason)
        return None, reason
    best = dict(best)
    if src.resolution_s and best["delay_s"] < src.resolution_s - 1e-9:
        best["delay_unresolved"] = src.resolution_s
    lines += [f"recommended ({why or 'best F1'}): " + _describe(best),
              "current config: " + _describe(now_row)]
    return best, ""


def hours_of(rows: list[dict[str, float]]) -> float:
    """The hours of data a sweep's rows were scored on (alerts / alerts per hour)."""
    for r in rows:
        if r.get("n_pred") and r.get("alerts_per_h"):
            return float(r["n_pred"]) / float(r["alerts_per_h"])
    return 0.0


def _describe(r: dict[str, float]) -> str:
    timing = r.get("timing_s", math.nan)
    t = f", alert delay off by {timing:.1f} s on average" if math.isfinite(timing) else ""
    delay = (f"delay not resolved (under {r['delay_unresolved']:g} s: keep yours)"
             if "delay_unresolved" in r else f"delay {r['delay_s']:g} s")
    return (f"threshold {r['threshold_deg']:g}°, {delay} (release "
            f"{r['release_deg']:g}°): F1 {r['f1']:.3f} (precision {r['precision']:.3f}, "
            f"recall {r['recall']:.3f}), {r['alerts_per_h']:.2f} alerts/h{t}")


def _run_slouch(features: Any, setting: dict[str, float]) -> Episodes:
    return features.slouch(setting)


def _sitting_grid(args: Any, cfg: Config) -> tuple[np.ndarray, np.ndarray] | None:
    """The sitting limits x break lengths to sweep (checked against the schema), if asked."""
    if not (args.sitting_limits or args.breaks):
        return None
    if args.from_influx:
        raise TuneError("--sitting-limits/--breaks need recordings (per-second posture); "
                        "InfluxDB metrics cannot replay the sedentary detector")
    limits = (parse_range(args.sitting_limits, "sitting-limits") if args.sitting_limits
              else np.array([cfg.sitting.limit_min]))
    breaks = (parse_range(args.breaks, "breaks") if args.breaks
              else np.array([cfg.sitting.break_s]))
    check_sitting_grid(limits, breaks)
    return limits, breaks


def _sitting_sweep(grid: tuple[np.ndarray, np.ndarray], cfg: Config, recs: list[Recording],
                   hours: float, out: Path, lines: list[str], progress: bool,
                   written: list[str]) -> dict[str, float] | None:
    limits, breaks = grid
    if not any(len(r.labels.sitting_alerts) for r in recs):
        lines.append("sitting sweep skipped: the labels have no sitting alerts")
        return None
    current = {"limit_min": cfg.sitting.limit_min, "break_s": cfg.sitting.break_s}
    rows = sweep(recs, [*sitting_settings(limits, breaks), current],
                 lambda f, s: f.sitting(s), score_sitting, progress=progress,
                 desc="sitting sweep")
    finish_sitting(rows, hours)
    now_row = rows.pop()
    result = SweepResult("sitting", {"limit_min": limits, "break_s": breaks}, rows, hours)
    write_table(out / "sitting_sweep.csv", rows,
                ["limit_min", "break_s", "precision", "recall", "f1", "break_precision",
                 "break_recall", "break_f1", "alerts_per_h", "tp", "n_pred", "found",
                 "n_true"])
    written.append("sitting_sweep.csv")
    one_break = 1.0 / max(1.0, max(r["b_true"] for r in rows))
    best, _ = recommend(rows, None, current=now_row, timing_tie=one_break,
                        prefer={"limit_min": cfg.sitting.limit_min,
                                "break_s": cfg.sitting.break_s})
    if plot_sitting(result, best, out / "sitting_tradeoff.png"):
        written.append("sitting_tradeoff.png")
    if best["f1"] <= 0:
        lines.append("no sitting recommendation: no setting finds any labelled sitting "
                     "alert (best F1 0.000)")
        return None
    lines.append(f"sitting: limit {best['limit_min']:g} min, break {best['break_s']:g} s: "
                 f"alert F1 {best['f1']:.3f}, break F1 {best['break_f1']:.3f} "
                 f"(sitting_sweep.csv, sitting_tradeoff.png)")
    return best
