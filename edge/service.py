"""The live loop on the Pi: sensor → pipeline → spool → MQTT, plus commands and haptics.

One thread does the work, in ticks of ``sensor.read_interval_s``: drain the sensor FIFO
in one burst, feed the chunk to the pipeline, commit what came out (events, metrics and
the sensor's own events) to the spool in one transaction, buzz for alerts, apply queued
commands, and hand spooled messages to MQTT. paho's own thread only moves bytes.

With ``--emulate`` the sensor is a register-level emulator driven by a simulated person,
and time is virtual: each tick advances a virtual monotonic clock by one read interval
and sleeps ``read_interval / speed``, so a simulated day can run in minutes through
exactly the code that runs on the Pi.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from spinesense import __version__, schema
from spinesense.config import Config
from spinesense.edge.clock import FixedWallClock, VirtualClock, WallClock
from spinesense.edge.commands import CommandHandler, load_thresholds
from spinesense.edge.feedback import Feedback
from spinesense.edge.haptics import open_haptics
from spinesense.edge.publisher import Publisher
from spinesense.edge.spool import Spool

log = logging.getLogger(__name__)

STATUS_EVERY_S = 60.0     # retained status refresh (real seconds)
EXIT_UNDRAINED = 3        # --duration run ended with messages still spooled


class Notifier:
    """systemd notify (READY, WATCHDOG, STATUS, STOPPING); a no-op outside systemd."""

    def __init__(self) -> None:
        self.notifier = None
        if os.environ.get("NOTIFY_SOCKET"):
            try:
                import sdnotify
                self.notifier = sdnotify.SystemdNotifier()
                if self.notifier.socket is not None:  # never let a full socket stall us
                    self.notifier.socket.setblocking(False)
            except ImportError:
                log.warning("NOTIFY_SOCKET is set but sdnotify is not installed; "
                            "pip install sdnotify (the unit's watchdog will fire)")
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self.every = usec / 2e6 if usec else math.inf
        self.next_ping = 0.0

    def send(self, text: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(text)

    def ping(self) -> None:
        now = time.monotonic()
        if self.notifier is not None and now >= self.next_ping:
            self.notifier.notify("WATCHDOG=1")
            self.next_ping = now + self.every


class Health:
    """Per-second tallies in pipeline time (samples, saturated samples, I2C errors, gap
    seconds), so that each metric reports the health of exactly the interval it covers,
    even when the pipeline holds data back while it learns the calibration."""

    KEYS = ("samples", "saturated", "i2c_errors", "gap_s")

    def __init__(self) -> None:
        self.secs: dict[int, np.ndarray] = {}

    def _add(self, sec: np.ndarray, column: int, weights: np.ndarray | None = None) -> None:
        if not len(sec):
            return
        base = int(sec.min())
        counts = np.bincount(sec - base, weights=weights)
        for off in np.flatnonzero(counts):
            row = self.secs.setdefault(base + int(off), np.zeros(len(self.KEYS)))
            row[column] += counts[off]

    def samples(self, t: np.ndarray, saturated: np.ndarray | None) -> None:
        sec = np.floor(t).astype(np.int64)
        self._add(sec, 0)
        if saturated is not None and saturated.any():
            self._add(sec[saturated], 1)

    def at(self, t: float, key: str, value: float) -> None:
        if value:
            self._add(np.array([math.floor(t)], np.int64), self.KEYS.index(key),
                      np.array([float(value)]))

    def take(self, end: float) -> dict[str, float]:
        """Totals of every second before ``end``, forgotten once taken. A tally that came
        late for its own interval (a gap is known only when data resumes, and an I2C
        error during a gap falls in no interval) goes with the next metric."""
        total = np.zeros(len(self.KEYS))
        for sec in [s for s in self.secs if s < end]:
            total += self.secs.pop(sec)
        return dict(zip(self.KEYS, total.tolist(), strict=True))


class EdgeService:
    """Builds the parts from the config and runs the loop until stopped or done."""

    def __init__(self, cfg: Config, *, emulate: str | None = None, scenario: str | None = None,
                 seed: int = 0, speed: float = 1.0, duration_s: float | None = None,
                 drain_timeout_s: float = 60.0, pin_factory: Any = None, bus: Any = None,
                 faults: str | None = None):
        self.cfg = cfg
        self.speed = speed
        self.duration_s = duration_s
        self.drain_timeout_s = drain_timeout_s
        self.stop_reason: str | None = None
        self.started = time.monotonic()
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        load_thresholds(cfg)

        self.vclock: VirtualClock | None = VirtualClock() if emulate else None
        self.mono: Callable[[], float] = self.vclock or time.monotonic
        self.reader = self._open_sensor(emulate, scenario, seed, bus, faults)  # + duration_s
        self.clock: WallClock | FixedWallClock
        if self.vclock is None:
            self.clock = WallClock(self.mono)
        else:
            # a run of known length ends (in UTC) when it really ends: the simulated span
            # lies in the past, where dashboards look, and nothing is stamped in the future
            now_ms = int(time.time() * 1000)
            span = self.duration_s or 0.0
            self.clock = FixedWallClock(self.vclock, now_ms + round(span * 1000 / speed)
                                        - round(span * 1000))
            if speed > 1 and not span:
                log.warning("--speed %g without --duration: virtual time runs ahead of the "
                            "wall clock, so stamps will lie in the future", speed)
        self.pipeline = self._open_pipeline()
        spool_path = cfg.spool.path or str(cfg.state_dir / "spool.sqlite3")
        self.spool = Spool(os.path.expanduser(spool_path), max_mb=cfg.spool.max_mb,
                           hard_cap_mb=cfg.spool.hard_cap_mb)
        self.publisher = Publisher(cfg, inflight=cfg.spool.inflight,
                                   wall_ms=lambda: self.clock.now_ms(),
                                   synced=lambda: self.clock.synced)
        self.feedback = Feedback(cfg.feedback, mono=self.mono, clock=self.clock,
                                 emit=lambda rec: self.emit([rec], []), pin_factory=pin_factory)
        self.commands = CommandHandler(cfg, self.pipeline, self.status,
                                       feedback=self.feedback.command)
        self.haptics = open_haptics(cfg.haptics.enabled, cfg.haptics.pin,
                                    pin_factory=pin_factory)
        self.notifier = Notifier()
        self.recorder = None
        if cfg.recording.enabled:
            from spinesense.edge.recorder import RotatingRecorder

            folder = cfg.recording.dir or str(cfg.state_dir / "recordings")
            self.recorder = RotatingRecorder(
                os.path.expanduser(folder), self.reader.info, device=cfg.device.id,
                rotate_min=cfg.recording.rotate_min, budget_mb=cfg.recording.budget_mb,
                fsync=self.vclock is None)
        self._save_calibration_next = False
        self.sensor_state = "starting"
        self.health = Health()
        self._i2c_errors = 0
        self.counts = {"events": 0, "metrics": 0}

    # -- parts --------------------------------------------------------------------------
    def _open_sensor(self, emulate: str | None, scenario: str | None, seed: int, bus: Any,
                     faults: str | None):
        from spinesense.firmware import open_sensor

        if not emulate:  # the I2C bus (or an smbus2-shaped stand-in), in real time
            return open_sensor(self.cfg.sensor, bus=bus, clock=self.mono)
        from spinesense.firmware.motion import StaticMotion

        if scenario:
            from spinesense.firmware.simulator import simulate

            sim = simulate(scenario, seed, rate_hz=self.cfg.sensor.rate_hz,
                           accel_only=not self.cfg.sensor.use_gyro,
                           duration_s=self.duration_s,  # the wearer clips it as configured
                           mounting={"back-out": "normal", "back-in": "flipped"}.get(
                               self.cfg.sensor.mount, "random"))
            motion = sim.motion()
            if self.duration_s is None:
                self.duration_s = float(sim.truth["duration_s"])
        else:
            motion = StaticMotion()
        return open_sensor(self.cfg.sensor, emulate=emulate, motion=motion, clock=self.mono,
                           faults=faults)

    def _open_pipeline(self):
        from spinesense.edge.calibration import Calibration
        from spinesense.edge.pipeline import Pipeline

        path = self.cfg.state_dir / "calibration.json"
        calibration = None
        if path.exists():
            try:
                calibration = Calibration.load(path)
                log.info("calibration loaded from %s", path)
            except (OSError, ValueError) as exc:
                log.error("%s: ignored (%s); the pipeline calibrates itself", path, exc)
        elif self.cfg.pipeline.auto_calibrate:
            log.info("no %s: the pipeline calibrates itself from the first still, upright "
                     "stretch", path)
        return Pipeline(self.cfg, calibration)

    def status(self) -> dict[str, Any]:
        """The retained status: flat fields (the collector stores them as they are)."""
        return {"state": "online", "version": __version__, "sensor": self.sensor_state,
                "chip": self.reader.info.chip, "rate_hz": self.reader.info.rate_hz,
                "spool_backlog": self.spool.backlog,
                "unconfirmed": self.publisher.unconfirmed(self.spool),
                "dropped_events": self.spool.dropped_events, "clock_synced": self.clock.synced,
                "uptime_s": round(time.monotonic() - self.started, 1),
                "commands_ok": self.commands.accepted,
                "commands_refused": self.commands.rejected}

    # -- one tick -----------------------------------------------------------------------
    def _health(self, metric: dict[str, Any]) -> None:
        """Fill the metric's health fields for the interval it covers."""
        interval = float(metric.get("interval_s") or self.cfg.metrics.interval_s)
        end = float(metric["t"])
        h = self.health.take(end)
        metric["sample_rate_hz"] = round(h["samples"] / interval, 2)
        metric["i2c_errors"] = int(h["i2c_errors"])
        metric["gap_s"] = round(h["gap_s"], 3)
        metric["saturated"] = int(h["saturated"])
        metric["spool_backlog"] = self.spool.backlog
        metric["unconfirmed"] = self.publisher.unconfirmed(self.spool)

    def _sensor_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "gap":
            self.health.at(event["t"], "gap_s", event.get("duration_s", 0.0))
        if kind == "sensor_lost":
            self.sensor_state = "lost"
        elif kind in ("sensor_back",) or (kind != "gap" and self.sensor_state == "starting"):
            self.sensor_state = "ok"
        self.publisher.status_due.set()
        log.log(logging.WARNING if kind in ("sensor_lost", "fifo_overflow") else logging.INFO,
                "sensor: %s", {k: v for k, v in event.items() if k != "type"} | {"type": kind})

    def emit(self, records: list[dict[str, Any]], sensor_events: list[dict[str, Any]]) -> None:
        """Spool events and metrics (one commit), then buzz and remember calibration."""
        out = []
        for rec in records:
            # the reader reports every hole in the data (with its cause); the pipeline's
            # own gap records describe the same holes again
            if rec["type"] in ("state", "gap"):
                continue
            if rec["type"] == "metric":
                self._health(rec)
            out.append(rec)
        for ev in sensor_events:
            self._sensor_event(ev)
            out.append(ev)
        if not out:
            return
        out.sort(key=lambda r: r["t"])
        synced = self.clock.synced
        device = self.cfg.device.id
        items = []
        for rec in out:
            kind = schema.kind_of(rec["type"])
            msg = schema.record_to_message(rec, device, 0, self.clock.to_ms, synced=synced)
            items.append((kind, msg, None if synced else float(rec["t"])))
            self.counts[kind] += 1
        self.spool.add(items)
        self.feedback.observe(out)
        for rec in out:
            if rec["type"] in ("mount_warning", "clip_moved", "calibration_stale"):
                log.warning("%s: %s", rec["type"], rec.get("message", rec))
            if self.haptics is not None and self.haptics.alert(rec["type"]):
                log.info("haptics: %s", rec["type"])
            if rec["type"] == "calibrated" and self._save_calibration_next:
                self._save_calibration_next = False
                self._save_calibration()

    def _save_calibration(self) -> None:
        """A calibration asked for by the recalibrate command outlives a restart."""
        cal = self.pipeline.calibration
        if cal is None or not cal.complete:
            return
        path = self.cfg.state_dir / "calibration.json"
        try:
            cal.save(path)
            log.info("calibration saved to %s", path)
        except OSError as exc:
            log.error("cannot save calibration to %s: %s", path, exc)

    def tick(self) -> None:
        if self.vclock is not None:
            self.vclock.advance(self.cfg.sensor.read_interval_s)
        chunk, sensor_events = self.reader.poll()
        errors = self.reader.stats.i2c_errors
        if errors != self._i2c_errors:
            self.health.at(self.mono(), "i2c_errors", errors - self._i2c_errors)
            self._i2c_errors = errors
        records: list[dict[str, Any]] = []
        if chunk is not None and len(chunk):
            if self.sensor_state == "starting":
                self.sensor_state = "ok"
                self.publisher.status_due.set()
            self.health.samples(chunk.t, chunk.saturated)
            if self.recorder is not None:
                self.recorder.write(chunk, sensor_events)
            records = self.pipeline.process(chunk)
        self.emit(records, sensor_events)
        self.service_io()

    def service_io(self) -> None:
        """Everything that is not the sensor: clock sync, commands, status, MQTT."""
        if self.clock.refresh():
            self.spool.restamp(self.clock.to_ms, self.publisher.last_handed)
        self.feedback.poll()
        while not self.publisher.commands.empty():
            kind, reply = self.commands.handle(*self.publisher.commands.get_nowait())
            self.publisher.reply(kind, reply)
            if kind == "cmd_ok" and reply["cmd"] == "recalibrate":
                self._save_calibration_next = True
            if reply.get("cmd") == "status":
                self.publisher.status_due.set()
        if self.publisher.status_due.is_set() and self.publisher.connected.is_set():
            self.publisher.status_due.clear()
            self.publisher.publish_status(self.status())
            self._next_status = time.monotonic() + STATUS_EVERY_S
        elif time.monotonic() >= getattr(self, "_next_status", math.inf):
            self.publisher.status_due.set()
        self.publisher.pump(self.spool)
        self.notifier.ping()

    # -- run ----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_reason = signal.Signals(signum).name

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        interval = self.cfg.sensor.read_interval_s
        self.publisher.start()
        self.notifier.send("READY=1")
        log.info("edge running: device %s, %s, tick %.3g s%s%s", self.cfg.device.id,
                 "emulated sensor" if self.vclock else "I2C sensor", interval,
                 f", speed {self.speed:g}x" if self.vclock else "",
                 f", for {self.duration_s:g} s" if self.duration_s else "")
        t0 = self.mono()
        step = interval / self.speed if self.vclock else interval
        next_tick = time.monotonic()
        lag_warned = False
        while self.stop_reason is None:
            self.tick()
            now = time.monotonic()
            if self.duration_s is not None and self.mono() - t0 >= self.duration_s - 1e-9:
                self.stop_reason = "duration reached"
                break
            next_tick += step
            delay = next_tick - now
            if delay > 0:
                time.sleep(delay)
            elif self.vclock is None:
                next_tick = now  # a real sensor's FIFO holds the backlog: no catching up
            elif delay < -5.0 and not lag_warned:
                lag_warned = True
                log.warning("the loop runs %.1f s behind --speed %g; it catches up as fast "
                            "as it can", -delay, self.speed)
        return self.shutdown()

    def shutdown(self) -> int:
        """Flush the pipeline into the spool, drain to the broker, say offline."""
        log.info("stopping (%s): flushing the pipeline", self.stop_reason)
        self.notifier.send("STOPPING=1")
        self.emit(self.pipeline.flush(), [])
        by_duration = self.stop_reason == "duration reached"
        timeout = self.drain_timeout_s if by_duration else min(self.drain_timeout_s, 5.0)
        drained = self.publisher.drain(self.spool, timeout, step=self.service_io)
        final = self.status() | {"state": "offline", "reason": "stopped"}
        self.publisher.stop(final)
        if self.haptics is not None:
            self.haptics.close()
        self.feedback.close()
        self.reader.close()
        if self.recorder is not None:
            self.recorder.close()
        backlog = self.spool.backlog
        self.spool.close()
        log.info("stopped: %d events and %d metrics spooled this run, %d published, "
                 "%d still spooled", self.counts["events"], self.counts["metrics"],
                 self.publisher.published, backlog)
        if not drained:
            outage = self.publisher.outage_s
            why = (f"the broker has been unreachable for {outage:.0f} s" if outage else
                   f"storage did not confirm them within the {timeout:.0f} s drain")
            log.error("%d messages are still spooled (%s); they are sent at the next start",
                      backlog, why)
            return EXIT_UNDRAINED if by_duration else 0
        return 0
