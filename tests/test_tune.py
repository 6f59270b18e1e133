"""`spinesense tune`: scoring, labels, and recovery of the parameters that made the labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from spinesense.analysis import tune


def test_overlaps_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        b_starts = np.sort(rng.uniform(0, 1000, 15))
        b = np.column_stack([b_starts, b_starts + rng.uniform(0.1, 5, 15)])
        b = b[np.r_[True, b[1:, 0] > b[:-1, 1]]]  # keep them disjoint
        a0 = rng.uniform(0, 1000, 30)
        a = np.column_stack([a0, a0 + rng.uniform(0.1, 20, 30)])
        brute = [(bool(((b[:, 0] < e) & (b[:, 1] > s)).any())) for s, e in a]
        assert tune.overlaps(a, b).tolist() == brute


def test_prf_edge_cases() -> None:
    assert tune.prf(0, 0, 0, 0) == (1.0, 1.0, 1.0)  # nothing to find, nothing found
    assert tune.prf(0, 0, 0, 4) == (0.0, 0.0, 0.0)
    p, r, f = tune.prf(3, 4, 3, 6)
    assert (p, r) == (0.75, 0.5) and f == pytest.approx(0.6)


def test_recommend_respects_budget_and_breaks_ties() -> None:
    rows = [{"f1": 0.9, "alerts_per_h": 8.0, "timing_s": 0.1},
            {"f1": 0.8, "alerts_per_h": 3.0, "timing_s": 2.0},
            {"f1": 0.8, "alerts_per_h": 2.0, "timing_s": 0.5},
            {"f1": 0.5, "alerts_per_h": 1.0, "timing_s": 0.1}]
    assert tune.recommend(rows, None)[0] is rows[0]
    assert tune.recommend(rows, 4.0)[0] is rows[2]  # equal F1: the better timing
    best, note = tune.recommend(rows, 0.5)
    assert best is rows[3] and "no setting stays within" in note


def test_labels_csv(tmp_path: Path) -> None:
    good = tmp_path / "labels.csv"
    good.write_text("start,end,label\n10,40,slouch\n100,130,Slouch\n200,200,sitting_alert\n"
                    "300,360,break\n400,500,sitting\n")
    lab = tune.load_labels_csv(good)
    assert lab.slouch.tolist() == [[10, 40], [100, 130]]
    assert lab.sitting_alerts.tolist() == [200] and lab.breaks.tolist() == [360]
    bad = tmp_path / "bad.csv"
    bad.write_text("start,end,label\n10,forty,slouch\n")
    with pytest.raises(tune.TuneError, match=r"bad.csv:2: start and end must be seconds"):
        tune.load_labels_csv(bad)
    bad.write_text("50,40,slouch\n")
    with pytest.raises(tune.TuneError, match=r":1: end 40.0 is before start 50.0"):
        tune.load_labels_csv(bad)


def test_parse_arguments() -> None:
    assert tune.parse_range("10:30:5", "thresholds").tolist() == [10, 15, 20, 25, 30]
    assert tune.parse_range("3,1,2", "delays").tolist() == [1, 2, 3]
    with pytest.raises(tune.TuneError, match="--delays '1:x:3'"):
        tune.parse_range("1:x:3", "delays")
    assert tune.parse_budget("4/h") == 4.0
    with pytest.raises(tune.TuneError, match="alerts per hour"):
        tune.parse_budget("lots")


def test_metric_episodes_at_interval_resolution() -> None:
    t_end = np.array([10, 20, 30, 40, 50, 60, 90, 100], float)  # a hole from 60 to 80
    flex = np.array([0, 20, 22, 0, 25, 18, 30, 0], float)
    f = tune.MetricFeatures(t_end, np.full(8, 10.0), flex, 0.0)
    ep = tune.metric_episodes(f, {"threshold_deg": 15, "delay_s": 5, "release_deg": 12})
    assert ep.intervals().tolist() == [[10, 30], [40, 60], [80, 90]]  # the hole splits
    ep = tune.metric_episodes(f, {"threshold_deg": 15, "delay_s": 15, "release_deg": 12})
    assert ep.intervals().tolist() == [[10, 30], [40, 60]]
    assert ep.alert.tolist() == [25, 55]
    ep = tune.metric_episodes(f, {"threshold_deg": 21, "delay_s": 5, "release_deg": 18})
    assert ep.intervals().tolist() == [[20, 30], [40, 50], [80, 90]]
