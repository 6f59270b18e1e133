"""The robustness harness (edge.robustness): its scoring on oracle records, and that it
scores a deliberately broken detector badly."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from spinesense.cli import main
from spinesense.config import Config
from spinesense.edge.robustness import run_suite, score_run
from spinesense.edge.robustness_report import distributions, format_report
from spinesense.firmware.worldsim import simulate_world


@pytest.fixture(scope="module")
def day():
    return simulate_world("long_sit", 6, minutes=70.0, rate_hz=25.0, slip=True,
                          stamps="clean")


def _oracle(sim, sign: float = 1.0) -> list[dict]:
    """What a perfect detector would say (with ``sign`` = -1: one that reads flexion
    backwards but reports episodes where the truth has them)."""
    tr = sim.truth
    recs: list[dict] = []
    for ep in tr["slouch_episodes"]:
        recs.append({"type": "slouch_start", "t": ep["alert"], "onset": ep["onset"]})
        recs.append({"type": "slouch_end", "t": ep["end"], "onset": ep["onset"]})
    recs += [{"type": "sitting_alert", "t": a["t"], "bout_start": a["bout_start"]}
             for a in tr["sitting_alerts"]]
    recs += [{"type": "sitting_break", "t": b["t"], **b} for b in tr["breaks"]]
    t = sim.labelling["t"]
    for s in np.arange(np.ceil(t[0]), t[-1] - 1.0):
        i = int(np.searchsorted(t, s + 0.5))
        post = ("sitting", "standing", "walking", "lying")[sim.posture[i]]
        recs.append({"type": "state", "t": float(s), "posture": post,
                     "flexion_deg": sign * float(sim.flexion_true[i])})
    return recs


def test_oracle_scores_perfectly(day) -> None:
    m = score_run(_oracle(day), day.truth, day.labelling["t"], day.flexion_true, Config())
    assert day.truth["slouch_episodes"] and day.truth["sitting_alerts"]
    assert m["slouch_f1"] == 1.0 and m["slouch_recall"] == 1.0
    assert m["forward_corr"] > 0.99 and m["flexion_gain"] == pytest.approx(1.0, abs=0.01)
    assert m["walk_acc"] > 0.99 and m["sitstand_acc"] > 0.99
    assert m["sit_recall"] == 1.0 and m["break_recall"] == 1.0
    assert m["false_per_sit_h"] == 0.0 and m["slouch_as_recline"] == 0.0
    assert m["slip_false_per_h"] == 0.0


def test_reversed_sign_is_caught(day) -> None:
    m = score_run(_oracle(day, -1.0), day.truth, day.labelling["t"], day.flexion_true,
                  Config())
    assert m["forward_corr"] < -0.99 and m["slouch_as_recline"] == 1.0


def test_a_broken_detector_scores_badly() -> None:
    """A detector whose slouch threshold is 45° and delay 60 s (truth: DESIGN A3's 15° /
    5 s) must show up as failing, with its worst seeds named."""
    good = Config()
    broken = dataclasses.replace(good, slouch=dataclasses.replace(
        good.slouch, threshold_deg=45.0, release_deg=40.0, delay_s=60.0))
    runs = run_suite([0, 2, 4], broken, truth_cfg=good, minutes=25.0)
    f1 = next(d for d in distributions(runs) if d.name == "slouch_f1")
    assert f1.runs >= 2 and f1.median < 0.5 and not f1.passed
    report = format_report(runs)
    assert "worst slouch_f1:" in report and "FAIL" in report
    assert "pooled over all runs: slouch precision" in report


def test_cli_robust_suite(capsys) -> None:
    assert main(["evaluate", "--suite", "robust", "--seeds", "1", "--first-seed", "5",
                 "--minutes", "20"]) == 0
    out = capsys.readouterr().out
    assert "robust suite: 1 independent days" in out and "slouch_f1" in out
    assert main(["evaluate", "--suite", "robust", "--seeds", "1", "--first-seed", "5",
                 "--minutes", "20", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out,  # standard JSON: no NaN or Infinity
                      parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert rows[0]["seed"] == 5 and "slouch_f1" in rows[0]["metrics"]
    assert main(["evaluate", "--suite", "robust", "--seeds", "0"]) == 2
    assert main(["evaluate", "--suite", "robust", "--seeds", "1", "--accel-only"]) == 2


def test_a_day_with_recording_gaps_is_scored() -> None:
    from spinesense.edge.robustness import day_for_seed, run_seed

    seed = next(s for s in range(40) if simulate_world(
        day_for_seed(s), s, minutes=20.0).truth["gaps"])
    run = run_seed(seed, Config(), minutes=20.0, via="memory")
    assert not run.calibrated.startswith("failed"), run.calibrated
    assert set(run.metrics) >= {"slouch_f1", "forward_corr", "walk_acc", "naive_walk_acc"}


def test_the_reproduce_command_writes_the_suites_day(tmp_path, capsys) -> None:
    """The report names worst seeds with a `spinesense simulate` command: it must give
    exactly the day the suite replayed."""
    from spinesense.edge.robustness import RobustRun, day_for_seed, labels_of

    seed = 7
    day = day_for_seed(seed)
    sim = simulate_world(day, seed, labels=labels_of(Config()))
    cmd = RobustRun(seed, day, "", "", "", 0.0, False, "", False, 0.0).reproduce()
    argv = [*cmd.split()[1:-1], str(tmp_path / "day.csv")]
    assert main(argv) == 0
    truth = json.loads((tmp_path / "day.truth.json").read_text())
    assert truth["n_samples"] == len(sim.t)
    assert truth["slouch_episodes"] == json.loads(json.dumps(sim.truth["slouch_episodes"]))
