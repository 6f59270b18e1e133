"""`spinesense report`: a real page, rendered by headless Chromium, from a recording and from
InfluxDB, with the same numbers either way."""

from __future__ import annotations

import base64
import os
import re
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from spinesense.analysis import dataset, report
from spinesense.cli import main
from spinesense.config import load
from spinesense.firmware.simulator import simulate

EPOCH0 = datetime(2026, 11, 23, 8, 30, tzinfo=UTC).timestamp()  # a Monday morning
IMG_RE = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')
CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = `images ${ok}/${imgs.length} loaded`;
});
</script></body>"""


def chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium not found: sudo apt-get install chromium"
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp / 'chromium'}",
         *args], capture_output=True, text=True, timeout=120, check=True)


def render_in_chromium(page: str, out: Path, tmp: Path, shot_name: str,
                       size: tuple[int, int]) -> Path:
    """The page in a real browser: every <img> decodes (naturalWidth > 0), and a
    screenshot of ``size`` is not blank. Returns the screenshot."""
    check = tmp / "check.html"
    check.write_text(page.replace("</body>", CHECK_SCRIPT))
    dom = chromium(["--virtual-time-budget=5000", "--dump-dom", check.as_uri()], tmp).stdout
    assert "<title>images 3/3 loaded</title>" in dom
    shot = tmp / shot_name
    chromium([f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", out.as_uri()],
             tmp)
    assert png_size(shot.read_bytes()) == size
    assert shot.stat().st_size > 60_000, "a blank page compresses to almost nothing"
    return shot


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Two simulated hours of an office day, as a DESIGN A1 CSV with its truth."""
    sim = simulate("workday", seed=11, rate_hz=50, duration_s=2 * 3600, mounting="normal")
    csv_path, _ = sim.write(tmp_path_factory.mktemp("rec") / "day.csv.gz")
    return csv_path, sim.truth


@pytest.fixture(scope="module")
def records(recording):
    from spinesense.edge.replay import replay

    path, truth = recording
    cal = (truth["calibration"]["start"], truth["calibration"]["end"])
    return replay(str(path), load(None), calibrate=cal, states=True)


def test_report_from_recording_renders_in_chromium(recording, tmp_path: Path) -> None:
    path, truth = recording
    out = tmp_path / "report.html"
    cal = f"{truth['calibration']['start']}:{truth['calibration']['end']}"
    assert main(["report", "--recording", str(path), "--calibrate", cal, "--out",
                 str(out)]) == 0
    page = out.read_text()
    images = IMG_RE.findall(page)
    assert len(images) == 3, "flexion, timeline and hourly plots"
    for b64 in images:
        w, h = png_size(base64.b64decode(b64))
        assert w >= 800 and h >= 200
    assert "http://" not in page and "https://" not in page, "self-contained: no fetches"
    render_in_chromium(page, out, tmp_path, "shot.png", (1280, 1600))


def test_report_numbers_agree_between_recording_and_influxdb(
        records, influxd, unique_db, unique_device, tmp_path: Path) -> None:
    """The recording replayed directly and the same records stored in InfluxDB (through
    the edge's wire schema and the collector's line encoder) give the same day."""
    cfg = load(None, overrides={"influx": {"url": influxd.url, "database": unique_db}})
    direct = dataset.from_records(records, source="replay")
    dataset.write_lines(influxd.url, unique_db,
                        dataset.records_to_lines(records, unique_device, EPOCH0))
    start = datetime.fromtimestamp(EPOCH0 - 60, UTC)
    end = datetime.fromtimestamp(EPOCH0 + 3 * 3600, UTC)
    stored = dataset.from_influx(cfg, unique_device, start, end)
    a, b = report.summarize(direct, cfg), report.summarize(stored, cfg)
    assert a.slouch_episodes > 0 and a.breaks > 0 and a.steps > 0
    assert a.slouch_episodes == b.slouch_episodes and a.breaks == b.breaks
    assert a.sedentary_bouts == b.sedentary_bouts and a.alerts == b.alerts
    assert a.steps == b.steps
    assert b.minutes_slouched == pytest.approx(a.minutes_slouched, abs=0.01)
    assert b.longest_bout_min == pytest.approx(a.longest_bout_min, abs=0.01)
    assert b.hours_of_data == pytest.approx(a.hours_of_data, abs=0.01)
    # and the CLI writes the page from InfluxDB, as `make demo` calls it
    toml = tmp_path / "c.toml"
    toml.write_text(f'[influx]\nurl = "{influxd.url}"\ndatabase = "{unique_db}"\n')
    out = tmp_path / "influx.html"
    assert main(["report", "-c", str(toml), "--device", unique_device, "--from",
                 start.isoformat(), "--to", end.isoformat(), "--out", str(out)]) == 0
    page = out.read_text()
    assert len(IMG_RE.findall(page)) == 3 and unique_device in page
    assert f">{b.slouch_episodes}</div><div class=\"l\">slouch episodes" in page


def test_report_errors_are_one_line(influxd, unique_db, tmp_path: Path, capsys) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(f'[influx]\nurl = "{influxd.url}"\ndatabase = "{unique_db}"\n')
    out = str(tmp_path / "r.html")
    assert main(["report", "-c", str(toml), "--device", "nobody", "--from", "2026-11-01",
                 "--to", "2026-11-02", "--out", out]) == 1
    err = capsys.readouterr().err.strip()
    assert "no metrics for device 'nobody'" in err and "\n" not in err
    assert main(["report", "-c", str(toml), "--device", "x", "--from", "yesterday",
                 "--out", out]) == 2
    assert "'yesterday' is not a date" in capsys.readouterr().err
    assert main(["report", "--recording", str(tmp_path / "missing.csv"), "--out", out]) == 2
    assert "recording not found" in capsys.readouterr().err
    toml.write_text('[influx]\nurl = "http://127.0.0.1:9"\n')
    assert main(["report", "-c", str(toml), "--device", "x", "--out", out]) == 1
    assert "cannot reach InfluxDB at http://127.0.0.1:9" in capsys.readouterr().err


def test_report_over_several_days_in_local_time(records, influxd, unique_db, unique_device,
                                               tmp_path: Path) -> None:
    """Two days in InfluxDB: one page with a day-by-day table, clock times in --tz."""
    for day in (0, 1):
        dataset.write_lines(influxd.url, unique_db,
                            dataset.records_to_lines(records, unique_device,
                                                     EPOCH0 + day * 86400))
    toml = tmp_path / "c.toml"
    toml.write_text(f'[influx]\nurl = "{influxd.url}"\ndatabase = "{unique_db}"\n')
    out = tmp_path / "days.html"
    assert main(["report", "-c", str(toml), "--device", unique_device, "--from",
                 "2026-11-23", "--to", "2026-11-24", "--tz", "Europe/Berlin",
                 "--out", str(out)]) == 0
    page = out.read_text()
    assert "<h2>Day by day</h2>" in page
    assert page.count("<tr><td>Mon 23 Nov 2026</td>") == 1
    assert "<tr><td>Tue 24 Nov 2026</td>" in page
    assert "CET" in page and len(IMG_RE.findall(page)) == 3
    assert main(["report", "-c", str(toml), "--device", unique_device, "--tz", "Mars/Base",
                 "--out", str(out)]) == 2


# ------------------------------------------------------------- a recording over three days

MONDAY = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
# (day, start hour UTC, seed): an hour of office work on each of three days
THREE_DAYS = [(0, 8.5, 31), (1, 9.0, 32), (2, 13.0, 33)]


@pytest.fixture(scope="module")
def three_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Three simulated hours on Mon, Tue and Wed, stitched into one DESIGN A1 CSV whose
    t column is Unix time (as a recorder stamping with the wall clock writes it): nights
    are gaps. The clip stays where it was (the same mounting every day)."""
    from spinesense.firmware.csvfast import write_csv

    days = []
    for day, hour, seed in THREE_DAYS:
        days.append(simulate("workday", seed=seed, rate_hz=25, duration_s=3600,
                             t0=MONDAY + day * 86400 + hour * 3600,
                             mounting=days[0].mounting if days else "random"))
    path = tmp_path_factory.mktemp("3day") / "three-days.csv.gz"
    write_csv(path, *(np.concatenate([getattr(d, k) for d in days])
                      for k in ("t", "acc", "gyro")))
    cal = days[0].truth["calibration"]
    return path, f"{cal['start']}:{cal['end']}"


def test_three_day_recording_has_dates_and_a_day_table(three_days, tmp_path: Path) -> None:
    path, cal = three_days
    out = tmp_path / "three-days.html"
    assert main(["report", "--recording", str(path), "--calibrate", cal, "--tz",
                 "Europe/Berlin", "--out", str(out)]) == 0
    page = out.read_text()
    assert "Mon 23 Nov 2026 09:30 – Wed 25 Nov 2026 15:00 CET" in page
    assert "1970" not in page and "Thu 01 Jan" not in page
    assert "<h2>Day by day</h2>" in page
    rows = re.findall(r"<tr><td>(\w{3} \d\d \w{3} 2026)</td><td>([\d.]+)</td>"
                      r"<td>[\d.]+ %</td><td>(\d+)</td>", page)
    assert [r[0] for r in rows] == ["Mon 23 Nov 2026", "Tue 24 Nov 2026", "Wed 25 Nov 2026"]
    assert all(float(r[1]) == pytest.approx(1.0, abs=0.05) for r in rows), rows
    total = int(re.search(r'>(\d+)</div><div class="l">slouch episodes', page).group(1))
    assert sum(int(r[2]) for r in rows) == total > 0
    assert "Unknown (grey)" in page and "Each bar fills its hour" in page
    # in a real browser: every plot decodes; and the screenshot docs/report-3day.png is
    shot = render_in_chromium(page, out, tmp_path, "report-3day.png", (1280, 1900))
    if os.environ.get("SPINESENSE_UPDATE_DOCS"):  # how docs/report-3day.png is made
        shutil.copyfile(shot, Path(__file__).resolve().parents[1] / "docs/report-3day.png")


def tick_labels(fig) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]


@pytest.fixture(scope="module")
def three_day_records(three_days):
    from spinesense.edge.replay import replay

    path, cal = three_days
    a, b = (float(x) for x in cal.split(":"))
    return replay(str(path), load(None), calibrate=(a, b), states=True)


def test_time_axes_never_wrap(three_day_records) -> None:
    """With dates: day names where the day changes, never 1970. Without (the same data on
    a monotonic clock from 0): elapsed days and hours, never a date, never wrapping."""
    from zoneinfo import ZoneInfo

    cfg = load(None)
    dated = dataset.from_records(three_day_records, source="three days")
    assert dated.epoch
    labels = tick_labels(report.plot_flexion(dated, cfg, report.Clock(dated,
                                                                      ZoneInfo("Europe/Berlin"))))
    assert any("Tue 24 Nov" in x for x in labels), labels
    assert not any("Jan" in x or "1970" in x for x in labels), labels
    shift = three_day_records[0]["t"] - 5.0
    plain = [{**r, **{k: r[k] - shift for k in ("t", "onset", "bout_start", "bout_end")
                      if isinstance(r.get(k), float)}} for r in three_day_records]
    undated = dataset.from_records(plain, source="three days, monotonic")
    assert not undated.epoch
    labels = tick_labels(report.plot_timeline(undated, report.Clock(undated)))
    assert "0:00\nday 2" in labels and not any("Nov" in x or "Jan" in x for x in labels)
    page = report.render(undated, cfg)
    assert "<tr><td>day 2 (24–48 h)</td>" in page and "<tr><td>day 3 (48–72 h)</td>" in page
    assert "over 3 days" in page and "carries no date" in page
    # a recording just over a day counts hours past 24 instead of wrapping to 0:00
    first_30h = [r for r in plain if r["t"] < 30 * 3600]
    short = dataset.from_records(first_30h, source="30 h")
    labels = tick_labels(report.plot_flexion(short, cfg, report.Clock(short)))
    assert "24:00" in labels and labels == sorted(labels, key=lambda x: int(x.split(":")[0]))


def test_hour_bars_unknown_and_clipped_extremes(three_day_records) -> None:
    from matplotlib.colors import to_hex

    cfg = load(None)
    ds = dataset.from_records(three_day_records, source="three days")
    clock = report.Clock(ds, UTC)
    # bins start on the hour; every bar lies inside its own hour, between its marks
    bins, _minutes, width = report.hourly(ds, clock)
    assert width == 3600 and all((b + clock.shift) % 3600 == 0 for b in bins)
    fig = report.plot_hourly(ds, clock)
    bars = [(p.get_x(), p.get_x() + p.get_width()) for c in fig.axes[0].containers
            for p in c]
    assert len(bars) == 2 * len(bins)  # sitting and slouched of each hour
    for (a, b), start in zip(bars, np.r_[bins, bins], strict=True):
        assert clock(start) < a < b < clock(start + 3600), (a, b, start)
    # unknown posture is drawn (the first minutes of each day) in its own row
    fig = report.plot_timeline(ds, clock)
    ax = fig.axes[0]
    assert next(t.get_text() for t in ax.get_yticklabels()) == "unknown"
    grey = [c for c in ax.collections
            if to_hex(c.get_facecolor()[0]) == report.POSTURE_COLORS["unknown"]]
    assert grey, "no unknown bars"
    assert "unknown" in set(ds.line_posture[:60]), "the day starts unknown"
    # a flexion spike far past the day's range is marked at the edge, with its value
    ds.line_flexion[500:503] = 170.0
    fig = report.plot_flexion(ds, cfg, clock)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "above the scale (to 170°)" in legend
    assert fig.axes[0].get_ylim()[1] < 170
