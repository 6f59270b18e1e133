"""The contract between the stages: every record the pipeline emits survives the wire.

Pipeline records → record_to_message (edge) → JSON → Validator (collector) →
message_to_line: nothing the edge publishes may be dead-lettered by the collector.
"""

from __future__ import annotations

import json

from spinesense.collector.points import message_to_line
from spinesense.collector.validate import Validator
from spinesense.config import Config
from spinesense.edge.replay import replay
from spinesense.firmware.simulator import simulate
from spinesense.schema import encode, kind_of, record_to_message, topic


def test_every_published_record_is_accepted_and_storable() -> None:
    sim = simulate("mixed", 5, duration_s=1800)
    records = [r for r in replay(sim.chunk(), Config()) if r["type"] != "state"]
    types = {r["type"] for r in records}
    assert {"calibrated", "metric", "slouch_start", "slouch_end"} <= types
    validator = Validator()
    base_ms = 1_764_000_000_000
    for seq, rec in enumerate(records, start=1):
        msg = record_to_message(rec, "alice", seq, lambda t: base_ms + t * 1000)
        kind = kind_of(rec["type"])
        _, _, checked = validator.check(topic("spinesense", "alice", kind), encode(msg))
        line = message_to_line(kind, checked)
        assert f"seq={seq}i" in line
        # times inside data are UTC milliseconds on the wire, not pipeline seconds
        for key in ("onset", "bout_start", "bout_end"):
            if key in msg["data"]:
                assert msg["data"][key] > base_ms


def test_vectors_are_flattened_into_scalar_fields() -> None:
    msg = record_to_message({"type": "calibrated", "t": 1.0, "up": [0.0, 0.6, 0.8],
                             "method": "window"}, "bob", 1, lambda t: t * 1000)
    assert msg["data"] == {"up_x": 0.0, "up_y": 0.6, "up_z": 0.8, "method": "window"}
    assert json.loads(encode(msg))["ts"] == 1000


def test_numpy_scalars_and_missing_values_become_plain_json() -> None:
    import numpy as np
    msg = record_to_message({"type": "metric", "t": 2.0, "flexion_mean": np.float64(3.5),
                             "steps": np.int64(4), "cadence_spm": float("nan"),
                             "up": np.array([0.0, 0.0, 1.0])}, "bob", 2, lambda t: t * 1000)
    assert msg["data"] == {"flexion_mean": 3.5, "steps": 4, "up_x": 0.0, "up_y": 0.0,
                           "up_z": 1.0}
    assert type(msg["data"]["steps"]) is int
    encode(msg)  # would raise on NaN
