"""`spinesense tune --feedback`: the wearer's presses as labels move the thresholds toward
the wearer's own truth (a simulated wearer with a known rule), beside a recording."""

from __future__ import annotations

import csv as csv_module
import tomllib
from pathlib import Path

import numpy as np
import pytest
from feedback_wearer import wearer_feedback, write_sidecar

from spinesense.analysis import feedback_labels as fl
from spinesense.analysis import tune
from spinesense.cli import main
from spinesense.config import load

WEARER = {"threshold_deg": 20.0, "release_deg": 17.0, "delay_s": 5.0}  # not the device's 15°


def _episode(onset: float, alert: float, end: float, reason: str = "released") -> dict:
    return {"type": "slouch_end", "t": end, "onset": onset, "alert_t": alert,
            "reason": reason}


def test_labels_from_feedback() -> None:
    episodes = [_episode(100, 105, 130), _episode(200, 205, 230),
                _episode(300, 305, 900),                   # never straightened up: unknown
                _episode(1000, 1005, 1020, "walking")]     # ended by walking: unknown
    feedback = [{"type": "feedback", "t": 110.0, "kind": "false_alarm", "alert_t": 105.0},
                {"type": "feedback", "t": 112.0, "kind": "false_alarm", "alert_t": 105.0},
                {"type": "feedback", "t": 1500.0, "kind": "false_alarm", "alert_t": 1490.0},
                {"type": "feedback", "t": 2000.0, "kind": "false_alarm", "alert_t": 1999.0},
                {"type": "feedback", "t": 1200.0, "kind": "missed_slouch"},
                {"type": "feedback", "t": 700.0, "kind": "break"}]
    lab = fl.build(feedback, episodes, [1490.0], straighten_s=60)
    assert lab.negative.tolist() == [[100, 130]]  # marked twice, one negative
    assert lab.slouch.tolist() == [[200, 230], [1140, 1215]]
    assert lab.positive_weight.tolist() == [fl.WEAK, fl.STRONG]
    assert lab.breaks.tolist() == [700]
    assert lab.counts == {"false_alarm": 2, "missed_slouch": 1, "break": 1,
                          "weak_positive": 1, "sitting_false_alarm": 1, "unmatched": 1}

    def counts(*intervals: tuple[float, float]) -> dict:
        arr = np.array(intervals, float).reshape(-1, 2)
        return fl.score(tune.Episodes(arr[:, 0], arr[:, 0] + 5, arr[:, 1]), lab)

    # the device's own alerts: the false alarm is a false positive, a miss is missed
    c = counts((100, 130), (200, 230), (300, 900))
    assert (c["found"], c["n_true"], c["n_pred"], c["alerts"]) == (1, 3, 3, 3)
    # a stricter setting: no false alarm, the weak positive kept, the miss still missed
    c = counts((205, 225))
    assert (c["found"], c["n_pred"]) == (1, 1)
    # a more sensitive one finds the miss too; unlabelled detections count neither way
    c = counts((100, 130), (200, 230), (1150, 1220), (3000, 3010))
    assert (c["found"], c["n_pred"], c["alerts"]) == (3, 5, 4)
    assert tune.prf(c["tp"], c["n_pred"], c["found"], c["n_true"])[1] == 1.0


def test_sidecar_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "day.feedback.jsonl"
    bad.write_text('# presses\n{"type": "feedback", "t": 5, "kind": "break"}\n{oops\n')
    with pytest.raises(fl.DataError, match=r"day\.feedback\.jsonl:3: not JSON"):
        fl.read_sidecar(bad)
    bad.write_text('{"type": "feedback", "t": 5, "kind": "meh"}\n')
    with pytest.raises(fl.DataError, match=r":1: feedback kind 'meh' is not one of"):
        fl.read_sidecar(bad)
    bad.write_text('{"type": "feedback", "t": "5", "kind": "break"}\n')
    with pytest.raises(fl.DataError, match=r":1: feedback needs t in seconds"):
        fl.read_sidecar(bad)
    with pytest.raises(fl.DataError, match="feedback file not found"):
        fl.read_sidecar(tmp_path / "none.jsonl")
    assert fl.sidecar_path(tmp_path / "d.csv.gz") == tmp_path / "d.feedback.jsonl"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory):
    """A simulated 8-hour workday and the wearer's truth at 20° (same motion)."""
    from spinesense.firmware.simulator import simulate

    folder = tmp_path_factory.mktemp("feedback_tune")
    sim = simulate("workday", seed=1, rate_hz=25)
    csv = sim.write(folder / "day.csv")[0]
    cal = (sim.truth["calibration"]["start"], sim.truth["calibration"]["end"])
    return csv, cal, sim.relabel(**WEARER)


def _tune(csv: Path, cal: tuple[float, float], out: Path, *extra: str) -> dict:
    assert main(["tune", *extra, str(csv), "--feedback", "--calibrate",
                 f"{cal[0]}:{cal[1]}", "--alert-budget", "20/h", "--no-progress",
                 "--out", str(out)]) == 0
    return tomllib.loads((out / "recommended.toml").read_text())["slouch"]


@pytest.mark.slow
def test_false_alarm_presses_raise_the_threshold(day, tmp_path: Path, capsys) -> None:
    """Device at 15°, wearer at 20°: they mark the alerts they disagree with."""
    from spinesense.edge.replay import replay

    csv, cal, truth = day
    records = replay(str(csv), load(None), calibrate=cal)
    presses = wearer_feedback(records, truth, seed=1)
    assert presses and {p["kind"] for p in presses} == {"false_alarm"}
    assert all("alert_t" in p for p in presses)
    write_sidecar(csv.with_name("day.feedback.jsonl"), presses)
    rec = _tune(csv, cal, tmp_path / "t")
    assert 18.0 <= rec["threshold_deg"] <= 22.0, rec  # from 15° toward the wearer's 20°
    printed = capsys.readouterr().out
    assert f"feedback labels: {len(presses)} marked false alarms" in printed
    with (tmp_path / "t/slouch_sweep.csv").open() as fh:
        rows = {(float(r["threshold_deg"]), float(r["delay_s"])): r
                for r in csv_module.DictReader(fh)}
    near15 = min(rows, key=lambda k: (abs(k[0] - 15) + abs(k[1] - 5)))
    assert float(rows[near15]["precision"]) < 1.0  # the device's own setting: false alarms
    # a sidecar in another time base is refused, with the reason
    write_sidecar(csv.with_name("day.feedback.jsonl"),
                  [{**p, "t": p["t"] + 1e6} for p in presses])
    assert main(["tune", str(csv), "--feedback", "--calibrate", f"{cal[0]}:{cal[1]}",
                 "--no-progress", "--out", str(tmp_path / "u")]) == 2
    assert "no feedback time lies within day.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_slouching_now_presses_lower_the_threshold(day, tmp_path: Path, capsys) -> None:
    """Device at 25°, wearer at 20°: they press "slouching now" on half of the misses;
    the sidecar also carries the device's own episodes (as the edge emitted them)."""
    from spinesense.edge.replay import replay

    csv, cal, truth = day
    config = tmp_path / "device.toml"
    config.write_text("[slouch]\nthreshold_deg = 25.0\nrelease_deg = 22.0\n")
    records = replay(str(csv), load(config), calibrate=cal)
    presses = wearer_feedback(records, truth, seed=1, p_missed=0.5)
    assert presses and {p["kind"] for p in presses} == {"missed_slouch"}
    sidecar = write_sidecar(tmp_path / "presses.jsonl", presses + [
        {k: r[k] for k in ("type", "t", "onset", "alert_t", "reason")}
        for r in records if r["type"] == "slouch_end"])
    # tune runs with the config the device wore (ties keep it, so it must be the real one)
    assert main(["tune", str(csv), "-c", str(config), "--feedback", str(sidecar),
                 "--calibrate",
                 f"{cal[0]}:{cal[1]}", "--alert-budget", "20/h", "--no-progress",
                 "--out", str(tmp_path / "v")]) == 0
    rec = tomllib.loads((tmp_path / "v/recommended.toml").read_text())["slouch"]
    assert 18.0 <= rec["threshold_deg"] <= 22.0, rec  # from 25° toward the wearer's 20°
    assert f"{len(presses)} \"slouching now\"" in capsys.readouterr().out
