"""The live sensor loop's data source: FIFO bursts in, timestamped SampleChunks out.

`open_sensor` finds and configures the chip (real bus or emulator); `SensorReader.poll`
drains the FIFO in a few transactions and returns samples plus sensor events. It never
raises on bus errors: transfers are retried with backoff, the chip is re-initialised after
repeated failures, a lost sensor is reported (``sensor_lost`` / ``sensor_back``) and every
hole in the data is recorded as a ``gap`` event.

Timestamps: the chip's clock is the sample count; its true rate differs from the nominal
ODR by up to a few percent, and the host clock only tells when a burst was read. Each
burst's newest sample was produced within one period before the read, so the reader runs
a small phase/frequency loop (like a PLL) on "read time − half a period" against the
count-predicted time: the timestamps stay evenly spaced, strictly increasing, and track
the monotonic clock without drift.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from spinesense.config import SensorConfig
from spinesense.firmware.bus import CountingBus
from spinesense.firmware.chips import DRIVERS
from spinesense.firmware.imu import FifoRead, ImuDriver
from spinesense.firmware.motion import MotionSource
from spinesense.firmware.registers import SMBusLike
from spinesense.samples import SampleChunk

log = logging.getLogger(__name__)

DEFAULT_ODR_ERROR = 0.002    # emulated chips run 0.2 % fast, like a real oscillator might
PHASE_GAIN = 0.1             # share of the timing error corrected per burst
FREQ_GAIN = 0.02             # share folded into the period estimate per burst
PERIOD_TOLERANCE = 0.05      # the estimated period stays within ±5 % of nominal
SLOW_READ_S = 0.02           # a FIFO read slower than this does not steer the timing
STALL_S = 1.0                # no data this long: check the chip still holds its config
RETRY_BACKOFF_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
REINIT_BACKOFF_S = (0.1, 0.25, 0.5)


class SensorError(RuntimeError):
    """The sensor could not be opened at all (no bus, nothing found); the message says why."""


@dataclass(frozen=True)
class SensorInfo:
    chip: str
    address: int
    rate_hz: float
    accel_range_g: float
    gyro_range_dps: float
    dlpf_hz: float
    use_gyro: bool
    emulated: bool
    fifo_capacity_s: float
    acc_lsb_g: float = 0.0        # one count, in g (what recordings quantise to)
    gyro_lsb_dps: float = 0.0

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReaderStats:
    samples: int = 0
    i2c_errors: int = 0
    gaps: int = 0
    gap_s: float = 0.0
    saturated: int = 0
    overflows: int = 0
    reinits: int = 0
    transactions: int = 0
    bytes: int = 0
    period_s: float = 0.0

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SensorReader:
    """Drains one configured IMU. Create it with `open_sensor`."""

    def __init__(self, driver: ImuDriver, bus: CountingBus, *, clock: Callable[[], float],
                 sleep: Callable[[float], None], retries: int, emulator: Any = None):
        self.driver = driver
        self.bus = bus
        self.clock = clock
        self.sleep = sleep
        self.retries = retries
        self.emulator = emulator            # the EmulatedBus when emulating, else None
        s = driver.settings
        self.nominal_period = 1.0 / s.rate_hz
        self.info = SensorInfo(driver.chip, driver.address, s.rate_hz, s.accel_range_g,
                               s.gyro_range_dps if driver.use_gyro else 0.0, s.dlpf_hz,
                               driver.use_gyro, emulator is not None,
                               driver.fifo_capacity_samples / s.rate_hz, s.acc_lsb_g,
                               s.gyro_lsb_dps)
        self._stats = ReaderStats(period_s=self.nominal_period)
        self._period = self.nominal_period
        self._anchored = False
        self._t_newest = 0.0                # model time of the newest sample handed out
        self._last_t: float | None = None   # last timestamp handed out
        self._restart_t = clock()           # when the FIFO last (re)started
        self._gap: dict[str, Any] | None = None
        self._ok = False
        self._lost_since: float | None = None
        self._next_attempt = 0.0
        self._attempt = 0
        self._last_data = self._restart_t
        self._last_check = self._restart_t

    @property
    def motion_epoch(self) -> float | None:
        """Clock time of the emulated motion's t = 0 (None on real hardware)."""
        if self.emulator is None:
            return None
        return next(iter(self.emulator.chips.values())).epoch

    @property
    def max_read_interval_s(self) -> float:
        """The longest pause between polls that leaves a margin (¼ of the FIFO's depth) for
        hiccups; beyond it the FIFO overflows whenever the host is late."""
        return 0.75 * self.info.fifo_capacity_s

    @property
    def stats(self) -> ReaderStats:
        self._stats.transactions = self.bus.stats.transactions
        self._stats.bytes = self.bus.stats.wire_bytes
        self._stats.period_s = self._period
        return self._stats

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """First initialisation; raises SensorError if the chip cannot be set up."""
        try:
            self._retry(self.driver.init)
        except OSError as exc:
            raise SensorError(f"{self.driver.chip} at 0x{self.driver.address:02X}: "
                              f"initialisation failed ({describe(exc)})") from None
        self._ok = True
        self._restart_t = self.clock()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.bus.close()

    def __enter__(self) -> SensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ---------------------------------------------------------------------------
    def poll(self) -> tuple[SampleChunk | None, list[dict[str, Any]]]:
        """Drain the FIFO once. Returns (samples or None, sensor events); never raises
        on bus errors."""
        events: list[dict[str, Any]] = []
        now = self.clock()
        if not self._ok:
            if now < self._next_attempt or not self._reinit(now, events):
                return None, events
            now = self.clock()
        try:
            batch = self._retry(self.driver.read_fifo)
        except OSError as exc:
            self._failed(exc, now, events)
            return None, events
        if batch.overflow or self.driver.fifo_suspect:
            reason = "fifo_overflow" if batch.overflow else "bus_error"
            if batch.overflow:
                self._stats.overflows += 1
                events.append({"type": "fifo_overflow", "t": now, "chip": self.info.chip,
                               "fifo_capacity_s": round(self.info.fifo_capacity_s, 3)})
            self._open_gap(reason)
            try:
                self._retry(self.driver.reset_fifo)
                self.driver.fifo_suspect = False
                self._restart_t = self.clock()
            except OSError as exc:
                self._failed(exc, now, events)
            return None, events
        if len(batch) == 0:
            self._watchdog(now, events)
            return None, events
        self._last_data = now
        # a read that took long (the host was descheduled) cannot time the samples well
        timed = self.clock() - now <= SLOW_READ_S
        return self._chunk(batch, now, events, timed), events

    def _watchdog(self, now: float, events: list[dict[str, Any]]) -> None:
        """No data for a while but no bus error: a brown-out may have reset the chip to
        its power-on state (an MPU then sleeps, an ST chip powers down) without a NACK."""
        quiet = now - max(self._last_data, self._restart_t)
        if quiet < STALL_S or now - self._last_check < STALL_S:
            return
        self._last_check = now
        try:
            intact = self._retry(self.driver.configured)
        except OSError as exc:
            self._failed(exc, now, events)
            return
        if not intact:
            log.warning("%s lost its configuration (a brown-out?); re-initialising",
                        self.info.chip)
            self._open_gap("chip_reset")
            self._ok = False
            self._attempt = 0
            self._reinit(now, events)

    def _chunk(self, batch: FifoRead, now: float, events: list[dict[str, Any]],
               timed: bool = True) -> SampleChunk:
        t = self._stamp(len(batch), now, timed)
        if self._gap is not None:
            self._close_gap(float(t[0]), events)
        self._last_t = float(t[-1])
        self._stats.samples += len(batch)
        self._stats.saturated += int(batch.saturated.sum())
        return SampleChunk(t, batch.acc_g, batch.gyro_dps, batch.saturated)

    # -- timing -----------------------------------------------------------------------------
    def _stamp(self, n: int, now: float, timed: bool = True) -> np.ndarray:
        """Timestamps for ``n`` samples whose newest was produced in (now − period, now]."""
        period = self._period
        target = now - 0.5 * period
        if self._anchored:
            predicted = self._t_newest + n * period
            error = target - predicted
            if not timed:
                newest = predicted
            elif abs(error) <= max(5 * period, 0.1):
                newest = predicted + PHASE_GAIN * error
                period += FREQ_GAIN * error / n
                lo, hi = (self.nominal_period * (1 - PERIOD_TOLERANCE),
                          self.nominal_period * (1 + PERIOD_TOLERANCE))
                self._period = period = min(hi, max(lo, period))
            else:
                log.info("sensor timing jumped by %.3f s; re-anchoring", error)
                newest = target
                if error > 0 and self._gap is None:      # samples went missing unflagged
                    self._gap = {"start": self._last_t, "reason": "timing"}
        else:
            newest = target
            # the first sample cannot predate the FIFO (re)start
            newest = max(newest, self._restart_t + (n - 0.5) * period)
            self._anchored = True
        t = newest - period * np.arange(n - 1, -1, -1, dtype=float)
        if self._last_t is not None and t[0] <= self._last_t:
            t += self._last_t + 0.5 * period - t[0]   # strictly increasing, always
            newest = float(t[-1])
        self._t_newest = newest
        return t

    # -- gaps, failures ---------------------------------------------------------------------
    def _open_gap(self, reason: str) -> None:
        self._anchored = False
        if self._gap is None:
            self._gap = {"start": self._last_t, "reason": reason}

    def _close_gap(self, end: float, events: list[dict[str, Any]]) -> None:
        gap, self._gap = self._gap, None
        if gap is None or gap["start"] is None:
            return
        duration = end - gap["start"]
        self._stats.gaps += 1
        self._stats.gap_s += duration
        events.append({"type": "gap", "t": gap["start"], "end": end,
                       "duration_s": round(duration, 6), "reason": gap["reason"],
                       "lost_samples": max(0, round(duration / self._period) - 1)})

    def _retry(self, fn: Callable[[], Any]) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except OSError as exc:
                self._stats.i2c_errors += 1
                if attempt == self.retries:
                    raise
                log.debug("I2C error (%s), retry %d", describe(exc), attempt + 1)
                self.sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
        raise AssertionError("unreachable")

    def _failed(self, exc: OSError, now: float, events: list[dict[str, Any]]) -> None:
        """Retries are exhausted: re-initialise the chip now, or report it lost."""
        log.warning("%s: %s after %d retries; re-initialising", self.info.chip,
                    describe(exc), self.retries)
        self._open_gap("bus_error")
        self._ok = False
        self._attempt = 0
        self._reinit(now, events, cause=exc)

    def _reinit(self, now: float, events: list[dict[str, Any]],
                cause: OSError | None = None) -> bool:
        try:
            self._retry(self.driver.init)
        except OSError as exc:
            delay = REINIT_BACKOFF_S[min(self._attempt, len(REINIT_BACKOFF_S) - 1)]
            self._attempt += 1
            self._next_attempt = now + delay
            if self._lost_since is None:
                self._lost_since = now
                self._open_gap("sensor_lost")
                events.append({"type": "sensor_lost", "t": now, "chip": self.info.chip,
                               "address": self.info.address,
                               "error": describe(cause or exc)})
                log.warning("sensor lost: %s", describe(cause or exc))
            return False
        self._stats.reinits += 1
        self._ok = True
        self._attempt = 0
        self._restart_t = self.clock()
        if self._lost_since is not None:
            events.append({"type": "sensor_back", "t": self._restart_t,
                           "chip": self.info.chip, "address": self.info.address,
                           "down_s": round(self._restart_t - self._lost_since, 6)})
            log.warning("sensor back after %.1f s", self._restart_t - self._lost_since)
            self._lost_since = None
        return True


def describe(exc: OSError) -> str:
    """'EREMOTEIO: Remote I/O error' for an errno, else the message."""
    import errno as errno_mod

    if exc.errno is not None:
        name = errno_mod.errorcode.get(exc.errno, str(exc.errno))
        return f"{name}: {exc.strerror or exc}"
    return str(exc)


def _null_sleep(_seconds: float) -> None:
    """With a virtual clock, waiting in real time would only slow the run down."""


def open_sensor(cfg: SensorConfig, *, bus: SMBusLike | None = None,
                emulate: str | None = None, motion: MotionSource | None = None,
                clock: Callable[[], float] = time.monotonic, faults: Any = None,
                sleep: Callable[[float], None] | None = None,
                odr_error: float = DEFAULT_ODR_ERROR) -> SensorReader:
    """Find, configure and start the IMU described by ``cfg``.

    ``emulate`` names a chip to emulate on an `EmulatedBus` (fed by ``motion``, on
    ``clock``, with ``faults``: a `FaultPlan` or its text form). Otherwise ``bus`` or
    ``smbus2.SMBus(cfg.bus)`` is used and ``cfg.chip``/``cfg.address`` are probed as
    needed. Raises SensorError with an actionable message if nothing usable is found.
    """
    from spinesense.firmware import probe

    if sleep is None:
        sleep = time.sleep if clock is time.monotonic else _null_sleep
    emulator = None
    if emulate is not None:
        from spinesense.firmware.emulated_chips import make_chip
        from spinesense.firmware.emulator import EmulatedBus
        from spinesense.firmware.faults import FaultPlan

        name = cfg.chip if emulate == "auto" and cfg.chip != "auto" else emulate
        if name not in DRIVERS:
            raise SensorError(f"cannot emulate {emulate!r}; choose one of "
                              f"{', '.join(DRIVERS)}")
        plan = FaultPlan.parse(faults) if isinstance(faults, str) else faults
        emulator = EmulatedBus(cfg.bus, clock=clock, faults=plan)
        emulator.attach(make_chip(name, motion, odr_error=odr_error), cfg.address or None)
        bus, wanted = emulator, name
    else:
        wanted = cfg.chip
        if bus is None:
            bus = probe.open_bus(cfg.bus)
    counting = CountingBus(bus)
    chip, address = probe.resolve(counting, wanted, cfg.address, bus_number=cfg.bus)
    driver = DRIVERS[chip](counting, address, rate_hz=cfg.rate_hz,
                           accel_range_g=cfg.accel_range_g, gyro_range_dps=cfg.gyro_range_dps,
                           dlpf_hz=cfg.dlpf_hz, use_gyro=cfg.use_gyro, sleep=sleep)
    reader = SensorReader(driver, counting, clock=clock, sleep=sleep, retries=cfg.retries,
                          emulator=emulator)
    reader.start()
    if cfg.read_interval_s > reader.max_read_interval_s:
        log.warning("sensor.read_interval_s = %g s but the %s FIFO holds only %.2f s at "
                    "%g Hz: it will overflow between reads; set sensor.read_interval_s to "
                    "%.2f or less", cfg.read_interval_s, chip, reader.info.fifo_capacity_s,
                    reader.info.rate_hz, reader.max_read_interval_s)
    return reader
