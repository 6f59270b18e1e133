"""`spinesense tune`: scoring, labels, and recovery of the parameters that made the labels."""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from spinesense.analysis import dataset, tune
from spinesense.cli import main
from spinesense.config import load


def test_episode_matching_is_one_to_one() -> None:
    true = np.array([[10, 20], [30, 40], [50, 60], [100, 110]], float)
    # one long detection over three labelled episodes finds one of them; a stray one
    # is a false positive; touching ends do not overlap
    pred = np.array([[5, 55], [70, 80], [110, 120]], float)
    pi, tj = tune.match_episodes(pred, true)
    assert pi.tolist() == [0] and tj.tolist() == [0]
    pred = np.array([[12, 14], [15, 18], [35, 45], [99, 101]], float)
    pi, tj = tune.match_episodes(pred, true)
    assert list(zip(pi.tolist(), tj.tolist(), strict=True)) == [(0, 0), (2, 1), (3, 3)]


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
    for r in rows:
        r["n_true"] = 20  # one episode's worth of F1: 0.05
    assert tune.recommend(rows, None)[0] is rows[0]
    assert tune.recommend(rows, 4.0)[0] is rows[2]  # equal F1: the better timing
    best, note = tune.recommend(rows, 0.5)
    assert best is rows[3] and "no setting stays within" in note
    # within one episode of the best F1 counts as a tie: timing decides
    close = [{"f1": 0.90, "alerts_per_h": 3.0, "timing_s": 2.0, "n_true": 20},
             {"f1": 0.86, "alerts_per_h": 3.0, "timing_s": 0.0, "n_true": 20},
             {"f1": 0.84, "alerts_per_h": 3.0, "timing_s": 0.0, "n_true": 20}]
    assert tune.recommend(close, None)[0] is close[1]
    # without timing: F1, then fewer alerts, then the least change from the config
    flat = [{"f1": 1.0, "alerts_per_h": 3.0, "threshold_deg": th, "delay_s": 5.0,
             "n_true": 10} for th in (10.0, 14.0, 18.0)]
    assert tune.recommend(flat, None, prefer={"threshold_deg": 15.0})[0] is flat[1]


def test_ties_go_to_the_current_config() -> None:
    rows = [{"f1": 0.95, "alerts_per_h": 2.0, "timing_s": 0.2, "n_true": 20},
            {"f1": 0.90, "alerts_per_h": 2.5, "timing_s": 0.4, "n_true": 20}]
    # the config scores within one episode of the best, with as close alert timing: kept
    current = {"f1": 0.92, "alerts_per_h": 2.2, "timing_s": 0.5, "n_true": 20}
    best, why = tune.recommend(rows, 4.0, current=current)
    assert best is current and "keep it" in why
    # clearly worse F1, worse timing, or over the budget: not a tie
    for worse in ({"f1": 0.85}, {"timing_s": 1.5}, {"alerts_per_h": 5.0}):
        best, _ = tune.recommend(rows, 4.0, current={**current, **worse})
        assert best is rows[0], worse


def test_labels_csv(tmp_path: Path) -> None:
    good = tmp_path / "labels.csv"
    good.write_text("start,end,label\n10,40,slouch\n100,130,Slouch\n200,200,sitting_alert\n"
                    "300,360,break\n400,500,sitting\n")
    lab = dataset.load_labels_csv(good)
    assert lab.slouch.tolist() == [[10, 40], [100, 130]]
    assert lab.sitting_alerts.tolist() == [200] and lab.breaks.tolist() == [360]
    bad = tmp_path / "bad.csv"
    bad.write_text("start,end,label\n10,forty,slouch\n")
    with pytest.raises(dataset.DataError, match=r"bad.csv:2: start and end must be seconds"):
        dataset.load_labels_csv(bad)
    bad.write_text("50,40,slouch\n")
    with pytest.raises(dataset.DataError, match=r":1: end 40.0 is before start 50.0"):
        dataset.load_labels_csv(bad)


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


@pytest.fixture(scope="module")
def labelled_days(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two simulated 8-hour workdays whose truth was labelled with threshold 20°,
    release 17° and delay 8 s (not the defaults 15°/12°/5 s)."""
    from spinesense.firmware.simulator import simulate

    folder = tmp_path_factory.mktemp("tune")
    paths = []
    for seed in (1, 2):
        sim = simulate("workday", seed=seed, rate_hz=25, labels=LABELS, mounting="normal")
        paths.append(sim.write(folder / f"day{seed}.csv")[0])
    return paths


LABELS = {"threshold_deg": 20.0, "release_deg": 17.0, "delay_s": 8.0}


@pytest.mark.slow
def test_tune_recovers_the_labelling_parameters(labelled_days: list[Path],
                                                tmp_path: Path, capsys) -> None:
    out = tmp_path / "tuning"
    argv = ["tune", *map(str, labelled_days), "--truth", "--alert-budget", "20/h",
            "--no-progress", "--out", str(out)]
    assert main(argv) == 0  # default grids: --thresholds 10:30:21 --delays 1:10:10
    printed = capsys.readouterr().out
    snippet = tomllib.loads((out / "recommended.toml").read_text())
    assert abs(snippet["slouch"]["threshold_deg"] - LABELS["threshold_deg"]) <= 2.0
    assert abs(snippet["slouch"]["delay_s"] - LABELS["delay_s"]) <= 1.0
    assert snippet["slouch"]["release_deg"] < snippet["slouch"]["threshold_deg"]
    load(None, overrides=snippet)  # the snippet is a valid config
    with (out / "slouch_sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 210
    # the default grids are whole degrees and whole seconds
    assert {float(r["threshold_deg"]) for r in rows} == set(range(10, 31))
    assert {float(r["delay_s"]) for r in rows} == set(range(1, 11))
    assert float(snippet["slouch"]["threshold_deg"]).is_integer()
    best_f1 = max(float(r["f1"]) for r in rows)
    assert best_f1 > 0.9
    # the defaults (15°, 5 s) are clearly worse against these labels
    default = min((r for r in rows if float(r["delay_s"]) == 5),
                  key=lambda r: abs(float(r["threshold_deg"]) - 15))
    assert float(default["f1"]) < best_f1 - 0.05
    assert "recommended" in printed and "current config" in printed
    png = (out / "slouch_tradeoff.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


@pytest.mark.slow
def test_tune_sitting_sweep_and_budget(labelled_days: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "tuning"
    assert main(["tune", str(labelled_days[0]), "--truth", "--thresholds", "16:24:5",
                 "--delays", "4,8,12", "--sitting-limits", "20:40:5", "--breaks", "60,90",
                 "--alert-budget", "1/h", "--no-progress", "--out", str(out)]) == 0
    summary = (out / "summary.txt").read_text()
    with (out / "sitting_sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10
    best = max(rows, key=lambda r: float(r["f1"]))
    assert float(best["limit_min"]) == 30 and float(best["f1"]) > 0.6  # the labelled 30 min
    # a 1 alert/h budget: the recommendation respects it (or says none does)
    snippet = tomllib.loads((out / "recommended.toml").read_text())
    chosen = next(r for r in csv.DictReader((out / "slouch_sweep.csv").open())
                  if float(r["threshold_deg"]) == snippet["slouch"]["threshold_deg"]
                  and float(r["delay_s"]) == snippet["slouch"]["delay_s"])
    assert float(chosen["alerts_per_h"]) <= 1.0 or "no setting stays within" in summary
    assert snippet["sitting"]["limit_min"] == 30


@pytest.fixture(scope="module")
def short_days(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two simulated 90-minute workdays of the same length (so the same sample count),
    labelled with the default thresholds."""
    from spinesense.firmware.simulator import simulate

    folder = tmp_path_factory.mktemp("short")
    return [simulate("workday", seed=seed, rate_hz=25, duration_s=5400).write(
        folder / f"short{seed}.csv")[0] for seed in (5, 6)]


def tune_cli(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    return main(["tune", *args, "--no-progress", "--out", str(out)]), out


def one_line(err: str) -> str:
    err = err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_labels_and_truth_must_belong_to_the_recording(short_days: list[Path],
                                                       tmp_path: Path, capsys) -> None:
    a, b = short_days
    # the truth of another run of the same length: the flexion does not agree with it
    code, out = tune_cli(tmp_path, str(a), "--truth", str(dataset.truth_path(b)))
    assert code == 2
    err = one_line(capsys.readouterr().err)
    assert "short6.truth.json: only" in err and "truth file of another run" in err
    assert not (out / "recommended.toml").exists()
    # a truth file written for a recording of another length
    other = json.loads(dataset.truth_path(a).read_text())
    other["n_samples"] -= 250
    wrong = tmp_path / "wrong.truth.json"
    wrong.write_text(json.dumps(other))
    assert tune_cli(tmp_path, str(a), "--truth", str(wrong))[0] == 2
    assert "written for a recording of 134750 samples, but short5.csv has 135000" in one_line(
        capsys.readouterr().err)
    # hand labels in another time base (here: epoch seconds) overlap nothing
    truth = dataset.load_truth(dataset.truth_path(a))
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{x + 1.8e9},{y + 1.8e9},slouch\n" for x, y in truth.slouch))
    assert tune_cli(tmp_path, str(a), "--labels", str(labels))[0] == 2
    err = one_line(capsys.readouterr().err)
    assert f"none of its {len(truth.slouch)} labels falls inside short5.csv" in err
    assert "time base" in err
    # one label past the end is named too
    labels.write_text("".join(f"{x},{y},slouch\n" for x, y in truth.slouch)
                      + "9000,9030,slouch\n")
    assert tune_cli(tmp_path, str(a), "--labels", str(labels))[0] == 2
    assert f"1 of {len(truth.slouch) + 1} labels lie outside short5.csv" in one_line(
        capsys.readouterr().err)


def test_no_recommendation_that_could_mislead(short_days: list[Path], tmp_path: Path,
                                              capsys) -> None:
    a = short_days[0]
    # values the config refuses are refused before any work, naming the schema's range
    assert tune_cli(tmp_path, str(a), "--truth", "--thresholds", "80:95:4")[0] == 2
    err = one_line(capsys.readouterr().err)
    assert "--thresholds '80:95:4'" in err and "slouch.threshold_deg" in err
    assert "<= 90" in err
    with pytest.raises(tune.TuneError, match="would not pass `config check`"):
        tune.check_snippet("[slouch]\nthreshold_deg = 95.0\n")
    # no setting (the config's own included) finds a labelled episode (F1 0): tables,
    # but no recommendation
    toml = tmp_path / "c.toml"
    toml.write_text("[slouch]\nthreshold_deg = 80.0\nrelease_deg = 77.0\n")
    code, out = tune_cli(tmp_path, str(a), "--truth", "-c", str(toml), "--thresholds",
                         "70:90:3")
    assert code == 2
    assert "no recommendation: no setting finds any labelled slouch episode" in one_line(
        capsys.readouterr().err)
    assert (out / "slouch_sweep.csv").exists() and not (out / "recommended.toml").exists()
    # over an earlier run's folder (--force), its recommendation does not linger
    good = tune_cli(tmp_path, str(a), "--truth", "--thresholds", "14:16:3", "--delays", "5")[1]
    assert (good / "recommended.toml").exists()
    assert main(["tune", str(a), "--truth", "-c", str(toml), "--thresholds", "70:90:3",
                 "--no-progress", "--force", "--out", str(good)]) == 2
    assert not (good / "recommended.toml").exists() and (good / "summary.txt").exists()
    assert "3 thresholds x 10 delays" in (good / "summary.txt").read_text()
    capsys.readouterr()
    # labels without slouch episodes would score the quietest setting F1 1.0: refused
    truth = json.loads(dataset.truth_path(a).read_text())
    truth["slouch_episodes"], truth["sitting_alerts"] = [], []
    empty = tmp_path / "empty.truth.json"
    empty.write_text(json.dumps(truth))
    assert tune_cli(tmp_path, str(a), "--truth", str(empty))[0] == 2
    assert "the labels have no slouch episodes" in one_line(capsys.readouterr().err)


def test_single_values_and_ties_to_the_config(short_days: list[Path], tmp_path: Path,
                                              capsys) -> None:
    a = short_days[0]
    # one threshold and one delay: no trade-off plot, said so, and a valid snippet
    code, out = tune_cli(tmp_path, str(a), "--truth", "--thresholds", "15", "--delays", "5")
    assert code == 0
    printed = capsys.readouterr().out
    assert "one setting swept: no trade-off plot" in printed
    assert not (out / "slouch_tradeoff.png").exists()
    load(out / "recommended.toml")  # what `config check` runs
    # one threshold, several delays: a 1-D sweep still plots
    code, out = tune_cli(tmp_path, str(a), "--truth", "--thresholds", "15")
    assert code == 0 and (out / "slouch_tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    # labels made with the config's own values (15°, 12°, 5 s): the whole-degree grid
    # ties with the config, and the tie keeps it
    code, out = tune_cli(tmp_path, str(a), "--truth", "--thresholds", "12:18:7",
                         "--delays", "3:7:5")
    assert code == 0
    snippet = tomllib.loads((out / "recommended.toml").read_text())
    assert snippet["slouch"] == {"threshold_deg": 15.0, "release_deg": 12.0, "delay_s": 5.0}
    load(out / "recommended.toml")
    # an existing output folder with files in it is not overwritten silently
    assert tune_cli(tmp_path, str(a), "--truth")[0] == 0
    assert main(["tune", str(a), "--truth", "--no-progress", "--out", str(out)]) == 2
    assert "folder is not empty" in one_line(capsys.readouterr().err)


def test_tune_errors_are_clear(tmp_path: Path, capsys) -> None:
    rec = tmp_path / "r.csv"
    rec.write_text("t,ax,ay,az,gx,gy,gz\n0,0,0,1,0,0,0\n")
    assert main(["tune", str(rec), "--out", str(tmp_path / "o")]) == 2
    assert "labels are needed" in capsys.readouterr().err
    assert main(["tune", str(rec), "--truth", "--out", str(tmp_path / "o")]) == 2
    assert "r.truth.json: truth file not found" in capsys.readouterr().err
    assert main(["tune", str(rec), "--truth", "--thresholds", "30:10:5",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--thresholds '30:10:5'" in capsys.readouterr().err
    assert main(["tune", "--from-influx", "--out", str(tmp_path / "o")]) == 2
    assert "--from-influx needs --device" in capsys.readouterr().err
    # --out naming an existing file, or a folder under a missing one: one line, no work
    assert main(["tune", str(rec), "--truth", "--out", str(rec)]) == 2
    assert "r.csv: exists and is not a folder" in capsys.readouterr().err
    assert main(["tune", str(rec), "--truth", "--out", str(tmp_path / "no" / "o")]) == 2
    assert "does not exist; create it first" in capsys.readouterr().err


def test_tune_from_influx_metrics_alone(labelled_days: list[Path], influxd, unique_db,
                                        unique_device, tmp_path: Path, capsys) -> None:
    """The day's metrics in InfluxDB (through the wire schema and the collector's line
    encoder), tuned against labels in epoch seconds: coarser, and it says so."""
    from spinesense.analysis.dataset import records_to_lines, write_lines
    from spinesense.edge.replay import replay

    truth = dataset.load_truth(dataset.truth_path(labelled_days[0]))
    t0 = 1_795_500_000.0  # 2026-11-24 04:00 UTC
    cal = json.loads(dataset.truth_path(labelled_days[0]).read_text())["calibration"]
    records = replay(str(labelled_days[0]), load(None), calibrate=(cal["start"], cal["end"]))
    write_lines(influxd.url, unique_db, records_to_lines(records, unique_device, t0))
    labels = tmp_path / "labels.csv"
    labels.write_text("start,end,label\n" + "".join(
        f"{a + t0},{b + t0},slouch\n" for a, b in truth.slouch))
    toml = tmp_path / "c.toml"
    toml.write_text(f'[influx]\nurl = "{influxd.url}"\ndatabase = "{unique_db}"\n')
    out = tmp_path / "tuning"
    base = ["tune", "-c", str(toml), "--from-influx", "--device", unique_device,
            "--from", "2026-11-24", "--to", "2026-11-24", "--no-progress"]
    assert main([*base, "--labels", str(labels), "--delays", "0,10,20,30",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "time resolution is the metrics interval (10 s)" in printed
    rows = list(csv.DictReader((out / "slouch_sweep.csv").open()))
    best = max(rows, key=lambda r: float(r["f1"]))
    assert float(best["f1"]) > 0.6
    assert 15 <= float(best["threshold_deg"]) <= 25  # mean flexion dilutes: loose
    snippet = tomllib.loads((out / "recommended.toml").read_text())
    assert snippet["slouch"]["delay_s"] >= 10  # never a delay under the resolution
    # a grid of delays all under the 10 s interval: the delay is not recommended at all
    assert main([*base, "--labels", str(labels), "--delays", "1:5:5",
                 "--out", str(tmp_path / "short-delays")]) == 0
    text = (tmp_path / "short-delays" / "recommended.toml").read_text()
    assert "delay_s" not in tomllib.loads(text)["slouch"]
    assert "# delay_s: not recommended; delays under 10 s cannot be told apart" in text
    assert "delay not resolved (under 10 s: keep yours)" in capsys.readouterr().out
    # labels in the recording's own time base do not overlap the stored range
    rec_labels = tmp_path / "rec-labels.csv"
    rec_labels.write_text("".join(f"{a},{b},slouch\n" for a, b in truth.slouch))
    assert main([*base, "--labels", str(rec_labels), "--out", str(tmp_path / "x")]) == 2
    assert "labels falls inside the metrics of" in capsys.readouterr().err
    # without labels: alerts per hour only, and nothing is recommended
    assert main([*base, "--out", str(tmp_path / "nolabels")]) == 0
    assert "no labels: only alerts per hour" in capsys.readouterr().out
    assert not (tmp_path / "nolabels" / "recommended.toml").exists()


@pytest.mark.slow
def test_tune_with_csv_labels(labelled_days: list[Path], tmp_path: Path, capsys) -> None:
    """Hand-made labels (intervals only, no alert times): overlap decides."""
    truth = dataset.load_truth(dataset.truth_path(labelled_days[0]))
    labels = tmp_path / "day1-labels.csv"
    labels.write_text("start,end,label\n" + "".join(
        f"{a:.2f},{b:.2f},slouch\n" for a, b in truth.slouch))
    cal = json.loads(dataset.truth_path(labelled_days[0]).read_text())["calibration"]
    out = tmp_path / "tuning"
    assert main(["tune", str(labelled_days[0]), "--labels", str(labels), "--calibrate",
                 f"{cal['start']}:{cal['end']}", "--thresholds", "14:26:7", "--delays",
                 "2,5,8,11",
                 "--no-progress", "--out", str(out)]) == 0
    assert "labelled slouch episodes: " + str(len(truth.slouch)) in capsys.readouterr().out
    snippet = tomllib.loads((out / "recommended.toml").read_text())
    assert 16 <= snippet["slouch"]["threshold_deg"] <= 24
    rows = list(csv.DictReader((out / "slouch_sweep.csv").open()))
    assert len(rows) == 28 and all(r["timing_s"] == "" for r in rows)
    assert max(float(r["f1"]) for r in rows) > 0.9
