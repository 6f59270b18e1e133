"""Grafana dashboards: sound JSON, and every query proven against real data in real influxd.

A few simulated workdays go through the real pipeline (Pipeline via replay), the real wire
schema (record_to_message) and the real line-protocol encoder (message_to_line) into the
session influxd. Each panel, annotation and variable query is then rendered the way Grafana
renders it (``$timeFilter``, ``$__interval``, template variables in their regex form) and
executed; each must return plausible, non-empty results, and the headline numbers must
match what replay computed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from spinesense.devservers import InfluxD

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCE_UID = "spinesense-influx"  # the provisioned datasource
DS_INPUT = "DS_INFLUXDB"  # the import input, and the hidden variable that resolves it
DS_REF = {"type": "influxdb", "uid": "${" + DS_INPUT + "}"}
DATASOURCE_YAML = ROOT / "dashboards/provisioning/datasources/influxdb.yaml"
PROVIDER_YAML = ROOT / "dashboards/provisioning/dashboards/spinesense.yaml"
# Grafana's own variables: always defined.
BUILTIN_VARS = {"timeFilter", "__interval", "__interval_ms", "interval", "__from", "__to",
                "__range", "__range_s", "__range_ms", "col", "tag_device", "tag_instance",
                "__timeFilter", "__dashboard", "__org", "__user"}
VAR_RE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, including those nested in collapsed rows."""
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, InfluxQL) for every panel target, annotation and variable query."""
    out = [(f"panel {p['id']} {p['title']!r} {t['refId']}", t["query"])
           for p in panels(dash) for t in p.get("targets", [])]
    out += [(f"annotation {a['name']!r}", a["query"]) for a in dash["annotations"]["list"]
            if a.get("datasource", {}).get("type") == "influxdb"]
    out += [(f"variable ${v['name']}", v["query"]) for v in dash["templating"]["list"]
            if v["type"] == "query"]
    return out


def used_variables(dash: dict[str, Any]) -> set[str]:
    text = json.dumps([q for _, q in queries(dash)]
                      + [p.get("description", "") + p.get("title", "") for p in panels(dash)]
                      + [r["uid"] for r in datasource_refs(dash)])
    return {a or b for a, b in VAR_RE.findall(text.replace("\\\"", '"'))}


# ---------------------------------------------------------------------------- structure


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dash = load(path)
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    # gridPos: inside the 24-column grid and no two panels overlap
    cells: dict[tuple[int, int], int] = {}
    for p in panels(dash):
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (f"{p['title']!r} overlaps panel "
                                             f"{cells[(x, y)]} at {x},{y}")
                cells[(x, y)] = p["id"]
    # every datasource reference is the import input (or Grafana's built-in); how it
    # resolves on each path is checked in test_dashboard_imports_both_ways
    refs = datasource_refs(dash)
    assert refs
    for ref in refs:
        assert ref == DS_REF or ref["uid"] == "-- Grafana --", f"datasource {ref}"
    for p in panels(dash):
        if p["type"] != "row":
            assert p["datasource"] == DS_REF and p["targets"], p["title"]
            assert p.get("description"), f"panel {p['title']!r} has no description"
            for t in p["targets"]:
                assert t["rawQuery"] and "$timeFilter" in t["query"], (p["title"], t["query"])
    # variables: every one used is defined, every one defined is used
    defined = {v["name"] for v in dash["templating"]["list"]}
    used = used_variables(dash)
    assert used - BUILTIN_VARS <= defined, f"undefined variables {used - BUILTIN_VARS - defined}"
    assert defined <= used, f"variables defined but never used: {defined - used}"
    device = next(v for v in dash["templating"]["list"] if v["name"] == "device")
    assert device["query"] == 'SHOW TAG VALUES FROM "posture" WITH KEY = "device"'
    # InfluxQL only: no Flux anywhere
    assert not any("from(bucket" in q or "|>" in q for _, q in queries(dash))


def datasource_refs(node: Any) -> list[dict[str, Any]]:
    """Every ``"datasource": {...}`` object anywhere in the JSON."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                out.append(value)
            out += datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            out += datasource_refs(value)
    return out


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def grafana_ui_import(dash: dict[str, Any], chosen: dict[str, str]) -> dict[str, Any]:
    """What Grafana's "Import dashboard" does with ``__inputs`` (its backend
    DashTemplateEvaluator): every input needs a value, then every ``${NAME}`` of an input
    in any string becomes that value, and ``__inputs`` is dropped. Other ``${...}``
    (dashboard variables) stay."""
    values = {}
    for inp in dash.get("__inputs", []):
        assert inp["name"] in chosen, f"the import would ask for input {inp['name']}"
        values["${" + inp["name"] + "}"] = chosen[inp["name"]]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if k != "__inputs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            return re.sub(r"\$\{.+?\}", lambda m: values.get(m.group(0), m.group(0)), node)
        return node

    return walk(dash)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_imports_both_ways(path: Path) -> None:
    """One JSON for both paths: Grafana's UI import fills the ``${DS_INFLUXDB}`` input
    with the datasource chosen in the import dialog; file provisioning leaves the JSON as
    it is, and the same ``${DS_INFLUXDB}`` then resolves through the hidden datasource
    variable of that name, set to the provisioned uid."""
    dash = load(path)
    # the import dialog: one InfluxDB datasource input, and what the dashboard needs
    assert dash["__inputs"] == [{**dash["__inputs"][0], "name": DS_INPUT, "type": "datasource",
                                 "pluginId": "influxdb", "pluginName": "InfluxDB"}]
    assert dash["__inputs"][0]["label"] and dash["__inputs"][0]["description"]
    requires = {(r["type"], r["id"]): r for r in dash["__requires"]}
    assert ("datasource", "influxdb") in requires
    # the weekday x hour matrix needs the Format time transformation (Grafana 10.1)
    major, minor = map(int, requires[("grafana", "grafana")]["version"].split(".")[:2])
    assert (major, minor) >= (10, 1)
    used = {p["type"] for p in panels(dash) if p["type"] != "row"}
    assert used == {i for t, i in requires if t == "panel"}, "__requires lists the panels"

    # 1. UI import into a Grafana whose InfluxDB has some other uid
    imported = grafana_ui_import(dash, {DS_INPUT: "P951FEA4DE68E13C5"})
    assert "__inputs" not in imported
    assert not [s for s in strings(imported) if "${" + DS_INPUT + "}" in s]
    influx = [r for r in datasource_refs(imported) if r["type"] == "influxdb"]
    assert influx and all(r["uid"] == "P951FEA4DE68E13C5" for r in influx)
    for p in panels(imported):
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "P951FEA4DE68E13C5", p["title"]
            assert all(t["datasource"]["uid"] == "P951FEA4DE68E13C5" for t in p["targets"])
    assert queries(imported) == queries(dash), "the import leaves the queries alone"

    # 2. file provisioning: the JSON as it is; ${DS_INFLUXDB} is a dashboard variable of
    # type datasource, defined before every variable that queries through it, hidden,
    # and set to the uid the provisioned datasource has
    provisioned_uid = yaml.safe_load(DATASOURCE_YAML.read_text())["datasources"][0]["uid"]
    variables = dash["templating"]["list"]
    ds_var = variables[0]
    assert ds_var["name"] == DS_INPUT and ds_var["type"] == "datasource"
    assert ds_var["query"] == "influxdb" and ds_var["hide"] == 2
    assert ds_var["current"]["value"] == provisioned_uid == DATASOURCE_UID
    assert ds_var["current"]["text"] == yaml.safe_load(
        DATASOURCE_YAML.read_text())["datasources"][0]["name"]
    for ref in datasource_refs(dash):
        if ref["type"] == "influxdb":
            name = VAR_RE.fullmatch(ref["uid"])
            assert name and (name.group(1) or name.group(2)) == DS_INPUT, ref


def test_provisioning_files() -> None:
    ds = yaml.safe_load(DATASOURCE_YAML.read_text())["datasources"]
    assert [d["uid"] for d in ds] == [DATASOURCE_UID]
    assert ds[0]["type"] == "influxdb" and ds[0]["jsonData"]["dbName"] == "spinesense"
    assert ds[0]["jsonData"].get("version", "InfluxQL") == "InfluxQL"
    provider = yaml.safe_load(PROVIDER_YAML.read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids)) == 2


# ------------------------------------------------------------- Grafana's macro rendering

INTERVAL_STEPS_MS = [1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
                     300_000, 600_000, 900_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
                     10_800_000, 21_600_000, 43_200_000, 86_400_000, 604_800_000]


def duration_ms(text: str) -> int:
    n, unit = int(text[:-1] if text[-2:] != "ms" else text[:-2]), text[-1]
    if text.endswith("ms"):
        return n
    return n * {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
                "w": 604_800_000}[unit]


def format_interval(ms: int) -> str:
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def grafana_interval(start_ms: int, end_ms: int, min_interval: str | None,
                     max_points: int = 1000) -> int:
    """$__interval as Grafana picks it: the range over the panel's data points, rounded up
    to a round step, never below the panel's (or the datasource's 10 s) minimum."""
    raw = (end_ms - start_ms) / max_points
    step = next((s for s in INTERVAL_STEPS_MS if s >= raw), INTERVAL_STEPS_MS[-1])
    return max(step, duration_ms(min_interval or "10s"))


def regex_escape(value: str) -> str:
    """Grafana's escaping of a value used inside an InfluxQL /regex/."""
    return re.sub(r"([\\/^$*+?.()|\[\]{}])", r"\\\1", value)


def render(query: str, *, start_ms: int, end_ms: int, variables: dict[str, list[str]],
           multi: set[str], min_interval: str | None = None) -> str:
    """Substitute Grafana's macros and template variables the way its InfluxDB datasource
    does: multi-value/All variables become ``(a|b)`` of regex-escaped values."""
    iv = grafana_interval(start_ms, end_ms, min_interval)
    q = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    q = q.replace("$__interval_ms", str(iv))
    q = re.sub(r"\$(__interval|interval)\b", format_interval(iv), q)
    q = q.replace("$__from", str(start_ms)).replace("$__to", str(end_ms))
    for name, values in variables.items():
        if name in multi:
            esc = [regex_escape(v) for v in values]
            text = esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"
        else:
            text = values[0]
        q = re.sub(r"\$\{" + name + r"(?::\w+)?\}|\$" + name + r"\b", lambda _m, t=text: t, q)
    leftover = re.findall(r"\$\{?\w+", q)
    assert not leftover or set(leftover) <= {"$col", "$tag_device"}, (query, leftover)
    return q


def test_render_like_grafana() -> None:
    q = ('SELECT mean("x") FROM "posture" WHERE "device" =~ /^$device$/ AND $timeFilter '
         "GROUP BY time($__interval) fill(null) -- $__interval_ms ${threshold}")
    out = render(q, start_ms=0, end_ms=86_400_000, variables={"device": ["a.b", "c"],
                 "threshold": ["15"]}, multi={"device"})
    assert out == ('SELECT mean("x") FROM "posture" WHERE "device" =~ /^(a\\.b|c)$/ AND '
                   "time >= 0ms and time <= 86400000ms GROUP BY time(2m) fill(null) -- "
                   "120000 15")
    assert grafana_interval(0, 3_600_000, "10s") == 10_000
    assert grafana_interval(0, 3_600_000, "1h") == 3_600_000


# ------------------------------------------------- a simulated multi-day dataset, stored

DAY0 = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
# (device, day offset, start hour UTC, simulated hours, seed)
DAYS = [("alice", 0, 8, 3.0, 21), ("alice", 1, 9, 3.0, 22), ("alice", 2, 13, 3.0, 23),
        ("bob", 1, 10, 1.5, 24)]


@dataclass
class Stored:
    db: str
    start_ms: int
    end_ms: int
    records: dict[str, list[tuple[float, dict[str, Any]]]]  # device → (epoch s, record)

    def metrics(self, device: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, r) for t, r in self.records[device] if r["type"] == "metric"]

    def events(self, device: str, *types: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, r) for t, r in self.records[device] if r["type"] in types]

    def slouch_pct(self, device: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        rows = [r for t, r in self.metrics(device) if lo <= t - r["interval_s"] < hi]
        return 100 * sum(r["slouch_s"] for r in rows) / sum(r["interval_s"] for r in rows)


def _wearer_presses(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A few feedback events (DESIGN A4), made by the edge's own code: "that was wrong"
    after the first slouch alert, "slouching now" and "a break" later in the day."""
    from spinesense.edge.feedback import ALERT_TYPES, AlertMemory

    memory = AlertMemory(60.0)
    memory.observe([r for r in records if r["type"] in ALERT_TYPES])
    first = next(r["t"] for r in records if r["type"] == "slouch_start")
    last = max(r["t"] for r in records)
    return [memory.short_press(first + 5.0), memory.record("missed_slouch", last - 1800.0),
            memory.short_press(last - 600.0)]


@pytest.fixture(scope="module")
def stored(influxd: InfluxD) -> Stored:
    """Simulated days → the real pipeline (replay) → record_to_message → message_to_line
    → influxd /write, each day placed at its own date and hour."""
    from spinesense.analysis.dataset import records_to_lines, write_lines
    from spinesense.config import load as load_config
    from spinesense.edge.replay import replay
    from spinesense.firmware.simulator import simulate
    from spinesense.samples import SampleChunk

    db = "dashboards_test"
    influxd.create_database(db)
    cfg = load_config(None)
    out: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    seqs: dict[str, int] = {}
    for device, day, hour, hours, seed in DAYS:
        sim = simulate("workday", seed=seed, rate_hz=50, duration_s=hours * 3600,
                       mounting="normal")
        cal = (sim.truth["calibration"]["start"], sim.truth["calibration"]["end"])
        chunk = sim.chunk()
        if device == "bob":  # the sensor drops out for 40 s: a gap, as on a real day
            keep = (chunk.t < 1800) | (chunk.t >= 1840)
            chunk = SampleChunk(chunk.t[keep], chunk.acc[keep], chunk.gyro[keep])
        records = replay(chunk, cfg, calibrate=cal)
        records += _wearer_presses(records)
        offset = (DAY0 + timedelta(days=day, hours=hour)).timestamp() - float(sim.t[0])
        lines = records_to_lines(records, device, offset, seq0=seqs.get(device, 0))
        seqs[device] = seqs.get(device, 0) + len(lines)
        write_lines(influxd.url, db, lines)
        out.setdefault(device, []).extend((r["t"] + offset, r) for r in records)
    return Stored(db, int(DAY0.timestamp() * 1000),
                  int((DAY0 + timedelta(days=3)).timestamp() * 1000), out)


def values(results: list[dict[str, Any]]) -> list[list[Any]]:
    """All value columns (not time) of all series of the first statement, non-null."""
    out = []
    for series in results[0].get("series", []):
        cols = series["columns"]
        for row in series["values"]:
            vals = [v for c, v in zip(cols, row, strict=True) if c != "time" and v is not None]
            if vals:
                out.append(vals)
    return out


def run_dashboard(influxd: InfluxD, stored: Stored, name: str, start_ms: int, end_ms: int,
                  devices: list[str], *, require: bool = True
                  ) -> dict[str, list[dict[str, Any]]]:
    """Every query of a dashboard, rendered and executed; results by where-label. With
    ``require``, each must return data."""
    dash = load(ROOT / "dashboards" / name)
    multi = {v["name"] for v in dash["templating"]["list"] if v.get("multi")}
    variables = {"device": devices, "threshold": ["15"]}
    min_iv = {f"panel {p['id']} {p['title']!r} {t['refId']}": p.get("interval")
              for p in panels(dash) for t in p.get("targets", [])}
    results = {}
    for where, q in queries(dash):
        sql = render(q, start_ms=start_ms, end_ms=end_ms, variables=variables, multi=multi,
                     min_interval=min_iv.get(where))
        results[where] = influxd.query(sql, stored.db)
        assert values(results[where]) or not require, (
            f"{name}: {where} returned nothing:\n{sql}")
    return results


def by_title(results: dict[str, Any], title: str, ref: str = "A") -> list[list[Any]]:
    key = next(k for k in results if k.endswith(f"{title!r} {ref}"))
    return values(results[key])


@pytest.mark.parametrize("devices", [["alice"], ["alice", "bob"]], ids=["alice", "all"])
def test_posture_trends_queries_on_real_data(influxd: InfluxD, stored: Stored,
                                             devices: list[str]) -> None:
    res = run_dashboard(influxd, stored, "posture-trends.json", stored.start_ms,
                        stored.end_ms, devices)
    recs = [x for d in devices for x in stored.records[d]]
    mets = [r for _, r in recs if r["type"] == "metric"]
    count = {k: sum(1 for _, r in recs if r["type"] == k)
             for k in ("slouch_start", "sitting_break", "sitting_alert", "sitting_reminder")}
    pct = 100 * sum(r["slouch_s"] for r in mets) / sum(r["interval_s"] for r in mets)
    assert 0 < pct < 60
    # the headline numbers are what replay computed
    assert by_title(res, "Time slouched")[0][0] == pytest.approx(pct, abs=0.05)
    assert by_title(res, "Minutes slouched")[0][0] == pytest.approx(
        sum(r["slouch_s"] for r in mets) / 60, rel=1e-6)
    assert by_title(res, "Slouch episodes")[0][0] == count["slouch_start"] > 0
    assert by_title(res, "Breaks")[0][0] == count["sitting_break"] > 0
    assert by_title(res, "Steps")[0][0] == pytest.approx(sum(r["steps"] for r in mets))
    assert by_title(res, "Longest sitting bout")[0][0] == pytest.approx(
        max(r["bout_s"] for r in mets) / 60)
    # per day (alice only: one device per series, days in UTC)
    if devices == ["alice"]:
        daily = [v[0] for v in by_title(res, "Time slouched per day")]
        expect = [stored.slouch_pct("alice", (DAY0 + timedelta(days=i)).timestamp(),
                                    (DAY0 + timedelta(days=i + 1)).timestamp())
                  for i in range(3)]
        assert daily == pytest.approx(expect, abs=0.05)
        per_day = [v[0] for v in by_title(res, "Slouch episodes per day")]
        assert sum(per_day) == count["slouch_start"]
    hourly = [v[0] for v in by_title(res, "Time slouched per hour")]
    assert len(hourly) >= 10 and all(0 <= h <= 100 for h in hourly)
    matrix = by_title(res, "Time slouched by weekday and hour")
    assert all(0 <= v[0] <= 100 for v in matrix)
    flex = by_title(res, "Flexion")
    assert all(v[-1] == 15 for v in flex)  # the threshold line
    assert all(-40 < v[0] < 60 for v in flex)
    durations = [v[0] for v in by_title(res, "Slouch episode durations")]
    assert len(durations) == sum(1 for _, r in recs if r["type"] == "slouch_end")
    assert all(d >= 5 for d in durations)  # at least the delay
    posture_min = by_title(res, "Time by posture per hour")
    assert all(0 <= x <= 60.01 * len(devices) for row in posture_min for x in row)
    ann = res["annotation 'Alerts'"]
    assert len(values(ann)) == count["slouch_start"] + count["sitting_alert"] + count[
        "sitting_reminder"]
    # the wearer's feedback (DESIGN A4), each press with its kind
    feedback = [r["kind"] for _, r in recs if r["type"] == "feedback"]
    assert sorted(v[0] for v in values(res["annotation 'Feedback'"])) == sorted(feedback)
    assert "false_alarm" in feedback and "missed_slouch" in feedback
    var = next(v for k, v in res.items() if k.startswith("variable"))
    assert sorted(x[-1] for x in values(var)) == ["alice", "bob"]


# --------------------------------------- device health: a live edge + collector segment


@dataclass
class Live:
    device: str
    start_ms: int
    end_ms: int


@pytest.fixture(scope="module")
def live(influxd: InfluxD, mosquitto, stored: Stored, tmp_path_factory) -> Live:
    """The edge service (emulated IMU, accelerated simulated workday) publishing through
    Mosquitto to the real collector: health fields, status and collector self-metrics."""
    import os
    import subprocess
    import sys
    import time

    work = tmp_path_factory.mktemp("live")
    device, prefix = "carol", f"dash{os.getpid()}"
    cfg = work / "live.toml"
    cfg.write_text(f"""[device]
id = "{device}"
state_dir = "{work / 'state'}"
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
topic_prefix = "{prefix}"
[influx]
url = "{influxd.url}"
database = "{stored.db}"
[collector]
group = "{prefix}"
client_id = "{prefix}-collector"
flush_interval_s = 0.2
stats_interval_s = 1.0
dead_letter_file = "{work / 'dead-letters.jsonl'}"
""")
    exe = [sys.executable, "-m", "spinesense"]
    with (work / "collector.log").open("wb") as log:
        collector = subprocess.Popen([*exe, "collector", "run", "-c", str(cfg), "--instance",
                                      "dashtest"], stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.5)
        edge = subprocess.run([*exe, "edge", "run", "-c", str(cfg), "--emulate", "mpu6050",
                               "--scenario", "workday", "--seed", "5", "--speed", "60",
                               "--duration", "12m"], capture_output=True, text=True,
                              timeout=300)
        assert edge.returncode == 0, edge.stderr[-2000:]
        where = f"\"device\" = '{device}'"
        deadline = time.monotonic() + 60
        counts: tuple = ()
        while time.monotonic() < deadline:  # until the stored counts stop changing
            now = (len(influxd.rows(f"SELECT seq FROM posture WHERE {where}", stored.db)),
                   len(influxd.rows(f"SELECT seq FROM posture_event WHERE {where}",
                                    stored.db)))
            if now == counts and now[0] > 0:
                break
            counts = now
            time.sleep(2.5)
        time.sleep(2.5)  # a few more collector self-metrics
    finally:
        collector.terminate()
        collector.wait(30)
    first = influxd.rows(f"SELECT first(seq) FROM posture WHERE {where}", stored.db)
    last = influxd.rows(f"SELECT last(seq) FROM posture WHERE {where}", stored.db)
    stats = influxd.rows("SELECT last(msgs_in) FROM spinesense_collector", stored.db)
    status = influxd.rows(f"SELECT * FROM device_status WHERE {where}", stored.db)
    dead = work / "dead-letters.jsonl"
    assert first and last and stats and status, (
        first, last, stats, status, dead.read_text()[-3000:] if dead.exists() else "")
    lo = min(first[0]["time"], stats[0]["time"]) - 60_000
    hi = max(last[0]["time"], stats[0]["time"]) + 60_000
    return Live(device, lo, hi)


def test_device_health_queries_on_real_data(influxd: InfluxD, stored: Stored,
                                            live: Live) -> None:
    # the live segment carries what only the edge service and the collector write
    # (health fields, status, self-metrics); the stored days add a sensor dropout (gap
    # events). Every query must return data in one or the other.
    res = run_dashboard(influxd, stored, "device-health.json", live.start_ms, live.end_ms,
                        [live.device], require=False)
    days = run_dashboard(influxd, stored, "device-health.json", stored.start_ms,
                         stored.end_ms, ["alice", "bob"], require=False)
    empty = [k for k in res if not values(res[k]) and not values(days[k])]
    assert not empty, f"no data for {empty}"
    assert [k for k in res if not values(res[k])] == [
        "panel 8 'I2C errors and gaps' B"], "only the gap events need the stored days"
    gaps = sum(v[0] for v in by_title(days, "I2C errors and gaps", "B"))
    assert gaps == sum(1 for _, r in stored.records["bob"] if r["type"] == "gap") >= 1
    rates = [v[0] for v in by_title(res, "Sample rate")]
    assert 95 <= sorted(rates)[len(rates) // 2] <= 105, rates  # an emulated 100 Hz IMU
    assert min(rates) >= 0, rates
    assert by_title(res, "Status")[0][-1] in ("online", "offline")
    assert 0 < by_title(res, "Data coverage")[0][0] <= 101
    assert all(v[0] >= 0 for v in by_title(res, "Spool backlog"))
    unconfirmed = [v[0] for v in by_title(res, "Unconfirmed by storage")]
    assert unconfirmed and all(v >= 0 for v in unconfirmed)
    assert max(v[0] for v in by_title(res, "Collector throughput")) > 0
    assert max(v[0] for v in by_title(res, "Messages per minute")) > 0
