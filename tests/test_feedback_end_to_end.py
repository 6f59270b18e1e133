"""The feedback loop end to end (issue 13): a button press (gpiozero MockFactory) and MQTT
commands → the edge's spool → Mosquitto → the collector → InfluxDB → the trends
dashboard's annotation query → `spinesense tune --from-influx --feedback`.

Everything is real but the IMU (emulated at register level, driven by the simulator) and
the button's pin (gpiozero's mock pin, pressed from another thread as a finger would).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpiozero.pins.mock import MockFactory
from mqtt_witness import Witness
from test_dashboards import ROOT, render

from spinesense.cli import main
from spinesense.config import load
from spinesense.devservers import InfluxD, Mosquitto
from spinesense.edge.service import EdgeService

EXE = [sys.executable, "-m", "spinesense"]
BUTTON_PIN = 5


def _config(path: Path, device: str, mosquitto: Mosquitto, influxd: InfluxD, db: str) -> Path:
    path.write_text(f"""[device]
id = "{device}"
state_dir = "{path.parent / 'state'}"
[pipeline]
calibration_wait_s = 30.0
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
[influx]
url = "{influxd.url}"
database = "{db}"
[collector]
group = ""
client_id = "collector-{device}"
flush_interval_s = 0.1
dead_letter_file = "{path.parent / 'dead.jsonl'}"
[feedback]
button = true
pin = {BUTTON_PIN}
long_press_s = 0.3
""")
    return path


def _wait(cond, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


class Wearer(threading.Thread):
    """Presses the button and sends commands while the edge runs (in the main thread)."""

    def __init__(self, svc: EdgeService, pin, witness: Witness, cmd_topic: str):
        super().__init__(daemon=True)
        self.svc, self.pin, self.witness, self.topic = svc, pin, witness, cmd_topic
        self.error: BaseException | None = None

    def press(self, hold_s: float) -> None:
        self.pin.drive_low()
        time.sleep(hold_s)
        self.pin.drive_high()

    def alerts(self) -> list[float]:
        return list(self.svc.feedback.memory.alerts)

    def command(self, **cmd) -> None:
        self.witness.client.publish(self.topic, json.dumps({"cmd": "feedback", **cmd}), qos=1)

    def run(self) -> None:
        try:
            assert _wait(lambda: self.alerts(), 60), "no slouch alert"
            self.press(0.05)           # "that buzz was wrong" (button)
            time.sleep(0.5)
            self.press(0.6)            # held: "I am slouching now" (button)
            assert _wait(lambda: len(self.alerts()) >= 2, 60), "no second alert"
            self.command(kind="false_alarm", id="fa")  # the second buzz, by MQTT
            # "a break", 2 s ago in Unix seconds (the device's clock)
            self.command(kind="break", t=self.svc.clock.now_ms() / 1000 - 2, id="br")
            self.command(kind="slouched", id="bad")    # refused with a reason
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc


def test_feedback_from_button_and_mqtt_reaches_influxdb_dashboard_and_tune(
        tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxD, unique_db: str,
        unique_device: str) -> None:
    path = _config(tmp_path / "c.toml", unique_device, mosquitto, influxd, unique_db)
    cfg = load(path)
    witness = Witness(mosquitto.port, unique_device)
    with (tmp_path / "collector.log").open("wb") as log:
        collector = subprocess.Popen([*EXE, "collector", "run", "-c", str(path)],
                                     stdout=subprocess.DEVNULL, stderr=log)
    factory = MockFactory()
    try:
        svc = EdgeService(cfg, emulate="mpu6050", scenario="slouch_short", seed=1,
                          speed=24, duration_s=720, pin_factory=factory)
        wearer = Wearer(svc, factory.pin(BUTTON_PIN), witness,
                        f"spinesense/{unique_device}/cmd")
        wearer.start()
        assert svc.run() == 0  # the simulated 12 minutes, then drained to the broker
        wearer.join(5)
        assert wearer.error is None, wearer.error
        replies = {s["data"].get("id"): s for s in witness.status()
                   if s["type"] in ("cmd_ok", "cmd_error")}
        assert replies["fa"]["type"] == "cmd_ok" and replies["br"]["type"] == "cmd_ok"
        assert replies["bad"]["type"] == "cmd_error"
        assert "feedback kind 'slouched' is unknown" in replies["bad"]["data"]["error"]

        # → InfluxDB (posture_event, tag type=feedback), through the collector
        where = f"\"device\" = '{unique_device}'"
        q = f"SELECT * FROM posture_event WHERE type = 'feedback' AND {where}"
        assert _wait(lambda: len(influxd.rows(q, unique_db)) >= 4, 60, 0.25), (
            (tmp_path / "collector.log").read_text()[-2000:])
        rows = influxd.rows(q, unique_db)  # in time order
        assert sorted(r["kind"] for r in rows) == ["break", "false_alarm", "false_alarm",
                                                   "missed_slouch"]
        assert rows[0]["kind"] == "false_alarm" and rows[1]["kind"] == "missed_slouch"
        alerts = influxd.rows(f"SELECT * FROM posture_event WHERE type = 'slouch_start' "
                              f"AND {where}", unique_db)
        alert_ts = [a["time"] for a in alerts]
        # each false alarm names its buzz: the first (button) and the second (MQTT)
        assert [r["alert_t"] for r in rows if r["kind"] == "false_alarm"] == alert_ts[:2]
        assert all(r.get("alert_t") is None for r in rows if r["kind"] != "false_alarm")

        # → the trends dashboard's "Feedback" annotation query, rendered as Grafana does
        dash = json.loads((ROOT / "dashboards/posture-trends.json").read_text())
        ann = next(a for a in dash["annotations"]["list"] if a["name"] == "Feedback")
        now_ms = int(time.time() * 1000)
        sql = render(ann["query"], start_ms=now_ms - 3_600_000, end_ms=now_ms,
                     variables={"device": [unique_device]}, multi={"device"})
        series = influxd.query(sql, unique_db)[0]["series"][0]
        kinds = [row[series["columns"].index(ann["textColumn"])] for row in series["values"]]
        assert kinds == [r["kind"] for r in rows]

        # → spinesense tune from InfluxDB, with the feedback as labels
        out = tmp_path / "tuning"
        start = datetime.now(UTC) - timedelta(hours=1)
        end = datetime.now(UTC) + timedelta(minutes=1)
        assert main(["tune", "-c", str(path), "--from-influx", "--device", unique_device,
                     "--from", start.isoformat(), "--to", end.isoformat(), "--feedback",
                     "--thresholds", "10:40:31", "--delays", "0,10,20", "--alert-budget", "60/h",
                     "--no-progress",
                     "--out", str(out)]) == 0
        summary = (out / "summary.txt").read_text()
        assert "feedback labels: 2 marked false alarms (negatives)" in summary
        assert "1 \"slouching now\"" in summary and "1 breaks not used" in summary
        recommended = tomllib.loads((out / "recommended.toml").read_text())["slouch"]
        with (out / "slouch_sweep.csv").open() as fh:
            sweep = list(csv.DictReader(fh))
        # from metrics alone a delay under the metrics interval is not recommended: the
        # snippet then leaves delay_s out, and the chosen row is the threshold's best
        chosen = max((r for r in sweep
                      if float(r["threshold_deg"]) == recommended["threshold_deg"]
                      and float(r["delay_s"]) == recommended.get("delay_s",
                                                                 float(r["delay_s"]))),
                     key=lambda r: float(r["f1"]))
        # the marked false alarms are negatives: some settings pay for them, the chosen
        # one does at most as badly as the worst, and it finds labelled slouching
        assert min(float(r["precision"]) for r in sweep) < 1.0
        assert float(chosen["precision"]) > min(float(r["precision"]) for r in sweep)
        assert float(chosen["found"]) > 0
    finally:
        witness.close()
        collector.terminate()
        collector.wait(20)
