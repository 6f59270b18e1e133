"""Checks that keep `spinesense tune` from misleading.

Labels must belong to the recording they score (time range, sample count, and whether
the recording's flexion agrees with them), the swept values must be ones the config
accepts, and the snippet written must pass the config schema (`config check`).
"""

from __future__ import annotations

import tomllib
from typing import Any

import numpy as np

from spinesense.analysis.dataset import Labels
from spinesense.config import ConfigError, from_dict

SPAN_TOL_S = 2.0  # label and truth times may sit this far past the recording's ends
MIN_AGREEMENT = 0.7  # share of labelled episodes whose flexion must show the slouch
MIN_EPISODES_TO_JUDGE = 3
# a labelled episode "shows" in the data when its median flexion is past this share of
# the labelling threshold: right labels sit well past it (median 19-40° for 15° labels in
# our simulated days), another run's labels mostly fall on ordinary sitting (0-9°)
SHOWS_FRACTION = 0.8


class TuneError(ValueError):
    """Bad labels or arguments: one line that names the problem and the fix."""


# ---------------------------------------------------------------------------- the grids


def check_slouch_grid(thresholds: np.ndarray, delays: np.ndarray, gap_deg: float,
                      texts: tuple[str, str]) -> None:
    """Every swept threshold and delay must be a value `config check` accepts (else the
    recommendation could be one the config refuses)."""
    for value in (float(thresholds.min()), float(thresholds.max())):
        _schema(f"--thresholds {texts[0]!r}", {"slouch": {
            "threshold_deg": value, "release_deg": max(0.0, value - gap_deg)}})
    for value in (float(delays.min()), float(delays.max())):
        _schema(f"--delays {texts[1]!r}", {"slouch": {"delay_s": value}})


def check_sitting_grid(limits: np.ndarray, breaks: np.ndarray) -> None:
    for value in (float(limits.min()), float(limits.max())):
        _schema("--sitting-limits", {"sitting": {"limit_min": value}})
    for value in (float(breaks.min()), float(breaks.max())):
        _schema("--breaks", {"sitting": {"break_s": value}})


def _schema(option: str, data: dict[str, Any]) -> None:
    try:
        from_dict(data, where=option)
    except ConfigError as exc:
        raise TuneError(f"{option}: {exc}") from None


def check_snippet(text: str) -> None:
    """The snippet must parse and pass the config schema, as `config check` would."""
    try:
        from_dict(tomllib.loads(text), where="recommended.toml")
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        raise TuneError(f"not writing recommended.toml: it would not pass `config check` "
                        f"({exc}); narrow --thresholds/--delays") from None


# --------------------------------------------------------------- labels vs the recording


def label_times(labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every label: slouch intervals, sitting alerts and breaks."""
    instants = np.r_[labels.sitting_alerts, labels.breaks]
    starts = np.r_[labels.slouch[:, 0], instants]
    ends = np.r_[labels.slouch[:, 1], instants]
    return starts, ends


def check_span(labels: Labels, name: str, first: float, last: float, *,
               unit: str = "s") -> None:
    """Every label must overlap the recording's time range [first, last]."""
    starts, ends = label_times(labels)
    if not len(starts):
        return
    outside = (ends < first - SPAN_TOL_S) | (starts > last + SPAN_TOL_S)
    where = (f"{name} runs from {first:.0f} to {last:.0f} {unit}; labels run from "
             f"{starts.min():.0f} to {ends.max():.0f}")
    if outside.all():
        raise TuneError(f"{labels.source}: none of its {len(starts)} labels falls inside "
                        f"{name} ({where}); label times must be in the recording's own time "
                        "base (its t column)")
    if outside.any():
        raise TuneError(f"{labels.source}: {int(outside.sum())} of {len(starts)} labels lie "
                        f"outside {name} ({where}); fix or drop those rows")


def check_made_for(labels: Labels, name: str, n_samples: int, first: float,
                   last: float) -> None:
    """A truth file names the recording it was written with: same sample count, start
    and length (within a sample or two)."""
    made = labels.made_for
    if "n_samples" in made and int(made["n_samples"]) != n_samples:
        raise TuneError(f"{labels.source}: written for a recording of "
                        f"{int(made['n_samples'])} samples, but {name} has {n_samples}; "
                        "pass the truth file written with this recording")
    if "t0" in made and abs(made["t0"] - first) > SPAN_TOL_S:
        raise TuneError(f"{labels.source}: written for a recording starting at "
                        f"t={made['t0']:g} s, but {name} starts at t={first:g} s; pass the "
                        "truth file written with this recording")
    if "duration_s" in made and abs(made["duration_s"] - (last - first)) > SPAN_TOL_S + 1:
        raise TuneError(f"{labels.source}: written for a {made['duration_s']:.0f} s "
                        f"recording, but {name} lasts {last - first:.0f} s; pass the truth "
                        "file written with this recording")


def agreement(t: np.ndarray, flexion: np.ndarray, labels: Labels,
              threshold_deg: float) -> tuple[int, int]:
    """(labelled slouch episodes whose measured flexion shows a slouch, episodes with
    data): the median flexion over the episode is past SHOWS_FRACTION of the threshold.
    Labels of another recording agree only by chance."""
    agree = judged = 0
    for a, b in labels.slouch:
        i, j = np.searchsorted(t, [a, b])
        seg = flexion[i:j]
        seg = seg[np.isfinite(seg)]
        if len(seg) == 0:
            continue
        judged += 1
        agree += bool(np.median(seg) > SHOWS_FRACTION * threshold_deg)
    return agree, judged


def check_agreement(labels: Labels, name: str, t: np.ndarray, flexion: np.ndarray,
                    threshold_deg: float, *, strict: bool) -> str:
    """Labels whose episodes mostly show no flexion do not belong to this recording: an
    error for a truth file (machine-made, so it must match), a warning for hand labels.
    Returns the warning ('' when they agree)."""
    threshold = labels.params.get("threshold_deg", threshold_deg)
    agree, judged = agreement(t, flexion, labels, threshold)
    if judged < MIN_EPISODES_TO_JUDGE or agree >= MIN_AGREEMENT * judged:
        return ""
    text = (f"{labels.source}: only {agree} of {judged} labelled slouch episodes show "
            f"flexion past {SHOWS_FRACTION * threshold:g}° in {name}")
    if strict:
        raise TuneError(text + "; is it the truth file of another run? Pass the one "
                               "written with this recording")
    return text + "; do these labels belong to this recording (and its calibration)?"
