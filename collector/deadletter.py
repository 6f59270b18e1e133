"""The dead-letter sink: where rejected messages go, with the reason, instead of vanishing.

Each record is one JSON object: time, topic, reason, and the raw payload (as text when it
is valid UTF-8, else base64 in ``payload_b64``; payloads over ``KEEP_BYTES`` are cut and
marked ``truncated``). Records go to a JSON-lines file and/or an MQTT topic. The sink never
raises and never blocks on the network: a failing file is counted and logged (rate
limited), and the topic publish is queued by paho without waiting for the broker.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
KEEP_BYTES = 256 * 1024


def dead_letter_record(topic: str, payload: bytes, reason: str,
                       now: float | None = None) -> dict[str, Any]:
    size = len(payload)
    kept = payload[:KEEP_BYTES]
    rec: dict[str, Any] = {"ts": int((now or time.time()) * 1000), "topic": topic,
                           "reason": reason, "size": size}
    try:
        rec["payload"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        rec["payload_b64"] = base64.b64encode(kept).decode("ascii")
    if size > KEEP_BYTES:
        rec["truncated"] = True
    return rec


class DeadLetter:
    """Counts rejected messages and records them to a file and/or a publish callback."""

    def __init__(self, path: str = "", publish: Callable[[bytes], Any] | None = None):
        self.path = os.path.expanduser(path) if path else ""
        self.publish = publish
        self.count = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._fh = None
        self._last_error_log = 0.0
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)

    def put(self, topic: str, payload: bytes, reason: str) -> None:
        rec = dead_letter_record(topic, payload, reason)
        line = json.dumps(rec, separators=(",", ":"))
        with self._lock:
            self.count += 1
            if self.path:
                try:
                    if self._fh is None:
                        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                    self._fh.write(line + "\n")
                    self._fh.flush()
                except OSError as exc:
                    self._fail(f"dead-letter file {self.path}: {exc}")
        if self.publish is not None:
            try:
                self.publish(line.encode())
            except Exception as exc:  # the sink must never take the collector down
                self._fail(f"dead-letter topic: {exc}")

    def _fail(self, what: str) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_log > 10:
            self._last_error_log = now
            log.error("cannot record a rejected message (%d so far): %s", self.errors, what)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
