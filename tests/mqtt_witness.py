"""A witness on the broker: records every message an edge publishes, for delivery tests."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt


class Witness:
    """A persistent-session QoS 1 subscriber; keeps (topic kind, message) in arrival order."""

    def __init__(self, port: int, device: str):
        self.device = device
        self.got: list[tuple[str, dict, bool]] = []  # (topic kind, message, DUP flag)
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"w-{device}",
                                  clean_session=False)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(
            [(f"spinesense/{device}/{kind}", 1) for kind in ("events", "metrics", "status")])
        self.client.connect("127.0.0.1", port, 10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "witness could not subscribe"

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic.rsplit("/", 1)[1], json.loads(msg.payload), msg.dup))

    def sequenced(self) -> list[dict]:
        """Events and metrics in arrival order."""
        return [m for m, _ in self.deliveries()]

    def deliveries(self) -> list[tuple[dict, bool]]:
        """(message, redelivered to the witness by the broker) for events and metrics."""
        with self.lock:
            return [(m, dup) for kind, m, dup in self.got if kind in ("events", "metrics")]

    def status(self) -> list[dict]:
        with self.lock:
            return [m for kind, m, _ in self.got if kind == "status"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def seqs(self, kind: str) -> list[int]:
        """Sorted seqs of the messages received on one topic kind (events or metrics)."""
        with self.lock:
            return sorted(m["seq"] for k, m, _ in self.got if k == kind)
