"""`spinesense report`: a real page, rendered by headless Chromium, from a recording and from
InfluxDB, with the same numbers either way."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

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
    # the page in a real browser: every <img> decoded (naturalWidth > 0)
    check = tmp_path / "check.html"
    check.write_text(page.replace("</body>", CHECK_SCRIPT))
    dom = chromium(["--virtual-time-budget=5000", "--dump-dom", check.as_uri()],
                   tmp_path).stdout
    assert "<title>images 3/3 loaded</title>" in dom
    shot = tmp_path / "shot.png"
    chromium([f"--screenshot={shot}", "--window-size=1280,1600", out.as_uri()], tmp_path)
    assert png_size(shot.read_bytes()) == (1280, 1600)
    assert shot.stat().st_size > 60_000, "a blank page compresses to almost nothing"


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
                 "--out", out]) == 1
    assert "'yesterday' is not a date" in capsys.readouterr().err
    assert main(["report", "--recording", str(tmp_path / "missing.csv"), "--out", out]) == 1
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
    assert page.count("<tr><td>Mon 23 Nov</td>") == 1 and "<tr><td>Tue 24 Nov</td>" in page
    assert "CET" in page and len(IMG_RE.findall(page)) == 3
    assert main(["report", "-c", str(toml), "--device", unique_device, "--tz", "Mars/Base",
                 "--out", str(out)]) == 2
