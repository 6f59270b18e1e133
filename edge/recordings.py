"""One way to read a recording, whatever its format: `open_recording(path)`.

It tells the format by the file's first bytes, not its name: the DESIGN A1 CSV, the same
gzip-compressed, or the native ``.ssrec`` of ``spinesense record``. Every command that
reads a recording (replay, report --recording, tune) goes through here, so each of them
reads the same formats, checks the units the same way and warns about the same damage.

Units: DESIGN A1 wants acceleration in g, angular rate in deg/s and ``t`` in seconds. A
CSV in m/s² (a still magnitude of about 9.8), in milli-g (about 1000), with ``t`` in
milliseconds, or with a gyro in rad/s (it turns 57 times less than the accelerometer's
tilt says) is refused with a one-line error that names the likely unit and the option
that converts it (``--accel-unit``, ``--time-unit``, ``--gyro-unit``); given those, the
reader converts and checks again.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from spinesense.edge.csvread import BLOCK_BYTES, RecordingError, iter_csv, open_bytes
from spinesense.samples import ACC_LIMIT_G, GYRO_LIMIT_DPS, SampleChunk

log = logging.getLogger(__name__)

SSREC_MAGIC = b"SPINEREC"
ACCEL_UNITS = {"g": 1.0, "m/s2": 1 / 9.80665, "mg": 1e-3}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
GYRO_UNITS = {"dps": 1.0, "rad/s": 180.0 / math.pi}
SSREC_CHUNK = 100_000  # samples per chunk handed on from a .ssrec (its blocks hold ~1 s)

# still magnitude ranges (in the file's numbers) that identify an acceleration unit
_ACCEL_GUESSES = (("m/s2", 4.0, 20.0, "m/s²"), ("mg", 400.0, 2000.0, "milli-g"))


@dataclass(frozen=True)
class Units:
    """The units of a CSV's columns; "auto" checks that they are g, deg/s and seconds."""

    accel: str = "auto"
    time: str = "auto"
    gyro: str = "auto"

    @classmethod
    def from_args(cls, args: object) -> Units:
        """From the --accel-unit, --time-unit and --gyro-unit options (see add_unit_options
        in spinesense.edge.cli)."""
        return cls(getattr(args, "accel_unit", "auto"), getattr(args, "time_unit", "auto"),
                   getattr(args, "gyro_unit", "auto"))


class RecordingReader:
    """An open recording: iterate it for SampleChunks (in g, deg/s and seconds).

    ``warnings`` collects what was lost or converted, complete once iterated (each is also
    logged unless ``log_warnings`` is false); ``format`` is csv, csv.gz or ssrec.
    """

    def __init__(self, path: str | Path, units: Units | None = None, *,
                 block_bytes: int = BLOCK_BYTES, log_warnings: bool = True):
        units = units or Units()
        for name, value, allowed in (("--accel-unit", units.accel, ACCEL_UNITS),
                                     ("--time-unit", units.time, TIME_UNITS),
                                     ("--gyro-unit", units.gyro, GYRO_UNITS)):
            if value != "auto" and value not in allowed:
                raise RecordingError(f"{name} {value!r}: choose one of "
                                     f"{', '.join(allowed)}")
        self.path = Path(path)
        self.accel_unit = units.accel
        self.time_unit = units.time
        self.gyro_unit = units.gyro
        self.block_bytes = block_bytes
        self.log_warnings = log_warnings
        self.warnings: list[str] = []
        self.format = ""

    def __iter__(self) -> Iterator[SampleChunk]:
        fh = open_bytes(self.path)
        try:
            head = fh.peek(8)[:8] if hasattr(fh, "peek") else b""
            if head == SSREC_MAGIC:
                self.format = "ssrec"
                source = self._ssrec(fh)
            else:
                self.format = "csv.gz" if head[:2] == b"\x1f\x8b" else "csv"
                source = self._csv(fh)
            yield from source
        finally:
            if fh is not sys.stdin.buffer:
                fh.close()
            if self.log_warnings:
                for note in self.warnings:
                    log.warning("%s", note)

    # -- CSV -------------------------------------------------------------------------
    def _csv(self, fh: BinaryIO) -> Iterator[SampleChunk]:
        scales: tuple[float, float, float] | None = None
        for chunk in iter_csv(self.path, block_bytes=self.block_bytes,
                              warnings=self.warnings, fh=fh):
            if scales is None:  # units are judged on the first block
                t_scale, acc_scale = self._time_scale(chunk), self._accel_scale(chunk)
                scales = (t_scale, acc_scale, self._gyro_scale(chunk, t_scale, acc_scale))
            t_scale, acc_scale, gyro_scale = scales
            if scales != (1.0, 1.0, 1.0):
                chunk = SampleChunk(chunk.t * t_scale, chunk.acc * acc_scale,
                                    None if chunk.gyro is None else chunk.gyro * gyro_scale,
                                    chunk.saturated)
            yield chunk

    def _accel_scale(self, chunk: SampleChunk) -> float:
        """The factor to g; refuses a file whose still magnitude is not about 1 g."""
        if self.accel_unit != "auto":
            scale = ACCEL_UNITS[self.accel_unit]
            mag = still_magnitude(chunk.acc) * scale
            if self.accel_unit != "g" and not 0.5 <= mag <= 2.0:
                raise RecordingError(f"{self.path}: with --accel-unit {self.accel_unit} the "
                                     f"still magnitude is {mag:.3g} g, not about 1 g: check "
                                     "the unit (drop --accel-unit if the file is in g)")
            return scale
        mag = still_magnitude(chunk.acc)
        if math.isnan(mag) or 0.5 <= mag <= 2.0:
            return 1.0
        for unit, lo, hi, name in _ACCEL_GUESSES:
            if lo <= mag <= hi:
                raise RecordingError(f"{self.path}: ax..az look like {name}, not g (a still "
                                     f"magnitude of {mag:.4g}, where g gives about 1); pass "
                                     f"--accel-unit {unit} to convert, or write the file in g")
        hint = (" (raw sensor counts? divide by the chip's LSB per g)" if mag > 2000 else "")
        raise RecordingError(f"{self.path}: ax..az are not in g: the still magnitude is "
                             f"{mag:.4g}, where a sensor at rest reads about 1 g{hint}; "
                             "pass --accel-unit g|m/s2|mg to say which unit it is")

    def _time_scale(self, chunk: SampleChunk) -> float:
        """The factor to seconds; refuses ``t`` that steps like milliseconds."""
        if self.time_unit != "auto":
            return TIME_UNITS[self.time_unit]
        dt = median_step(chunk.t)
        if math.isnan(dt) or dt < 1.0:
            return 1.0
        for unit, name in (("ms", "milliseconds"), ("us", "microseconds")):
            rate = 1.0 / (dt * TIME_UNITS[unit])
            if 20.0 <= rate <= 500.0:
                epoch = " since the Unix epoch" if unit == "ms" and chunk.t[0] > 1e11 else ""
                raise RecordingError(f"{self.path}: t looks like {name}{epoch}, not seconds "
                                     f"(rows {dt:g} apart: {rate:.0f} Hz in {name}); pass "
                                     f"--time-unit {unit} to convert, or write t in seconds")
        raise RecordingError(f"{self.path}: t steps by {dt:g} between rows: in seconds that "
                             f"is {1 / dt:.3g} Hz, but spinesense needs 25 to 400 samples a "
                             "second; pass --time-unit s|ms|us to say which unit t is in")

    def _gyro_scale(self, chunk: SampleChunk, t_scale: float, acc_scale: float) -> float:
        """The factor to deg/s; refuses a gyro that turns far less than the accelerometer's
        tilt (rad/s), or not at all (zero-filled columns)."""
        if chunk.gyro is None:
            return 1.0
        scale = GYRO_UNITS.get(self.gyro_unit, 1.0)
        tilt, turned = tilt_and_rotation(chunk.t * t_scale, chunk.acc * acc_scale,
                                         chunk.gyro * scale)
        if self.gyro_unit != "auto":
            if self.gyro_unit != "dps" and tilt >= 30.0 and turned > 10.0 * tilt:
                raise RecordingError(f"{self.path}: with --gyro-unit {self.gyro_unit} the "
                                     f"gyro turns {turned:.0f}° where the accelerometer tilted "
                                     f"{tilt:.0f}°: check the unit (drop --gyro-unit if the "
                                     "file is in deg/s)")
            return scale
        if tilt < 30.0 or turned > 0.1 * tilt:
            return 1.0  # too little movement to tell, or deg/s (turned ≈ tilt)
        if turned < 1e-3 * tilt:
            raise RecordingError(f"{self.path}: gx..gz show no rotation while the "
                                 f"accelerometer tilted {tilt:.0f}°: leave the gyro columns "
                                 "empty if there is no gyro (accelerometer only)")
        raise RecordingError(f"{self.path}: gx..gz look like rad/s, not deg/s (they turn "
                             f"{turned:.3g}° where the accelerometer tilted {tilt:.0f}°); "
                             "pass --gyro-unit rad/s to convert, or write them in deg/s")

    # -- .ssrec ----------------------------------------------------------------------
    def _ssrec(self, fh: BinaryIO) -> Iterator[SampleChunk]:
        from spinesense.firmware.recording import KIND_DATA, iter_blocks

        if (self.accel_unit, self.time_unit, self.gyro_unit) != ("auto",) * 3:
            raise RecordingError(f"{self.path}: a .ssrec stores its own units; "
                                 "--accel-unit, --time-unit and --gyro-unit apply to CSV "
                                 "files only")
        pending: list[SampleChunk] = []
        prev_t, held = -np.inf, 0
        for kind, value, offset in iter_blocks(self.path, data=fh.read()):
            if kind == KIND_DATA and len(value):
                if value.t[0] <= prev_t:
                    raise RecordingError(
                        f"{self.path}: the data block at byte {offset} starts at "
                        f"t={value.t[0]:.6f}, not after t={prev_t:.6f} (two sessions in one "
                        "file?); export it with `spinesense record export` and split the CSV")
                prev_t = float(value.t[-1])
                pending.append(value)
                held += len(value)
                if held >= SSREC_CHUNK:
                    yield SampleChunk.concat(pending)
                    pending, held = [], 0
            elif kind == 0:
                self.warnings += _ssrec_damage(self.path, value)
        if pending:
            yield SampleChunk.concat(pending)
        elif prev_t == -np.inf:
            raise RecordingError(f"{self.path}: the recording holds no samples")


def _ssrec_damage(path: Path, notes: dict) -> list[str]:
    skipped = int(notes.get("skipped_bytes", 0))
    if notes.get("torn_tail"):
        return [f"{path}: the file ends inside a block ({skipped} bytes ignored, about a "
                "second of data), as after a power cut; everything before it was read"]
    if skipped:
        return [f"{path}: {skipped} damaged bytes were skipped (their samples are lost)"]
    return []


def still_magnitude(acc: np.ndarray) -> float:
    """Median |a| over the finite rows: ~1 in g for a worn sensor, whatever it does."""
    with np.errstate(over="ignore"):  # a 1e300 row is absurd, not a reason to warn here
        mag = np.sqrt(np.sum(acc[np.isfinite(acc).all(axis=1)] ** 2, axis=1))
    return float(np.median(mag)) if len(mag) else float("nan")


def tilt_and_rotation(t: np.ndarray, acc: np.ndarray, gyro: np.ndarray,
                      min_deg: float = 5.0) -> tuple[float, float]:
    """Degrees the gravity direction turned (1 s means, steps over ``min_deg`` only, so
    noise does not add up) and degrees the gyro turned over the same steps. In deg/s the
    two agree (within a few % on simulated days), in rad/s the gyro's is 57 times less."""
    ok = (np.isfinite(t) & (np.abs(acc) <= ACC_LIMIT_G).all(axis=1)
          & (np.abs(gyro) <= GYRO_LIMIT_DPS).all(axis=1))  # absurd rows are the guard's
    t, acc, gyro = t[ok], acc[ok], gyro[ok]
    if len(t) < 2 or t[-1] - t[0] < 12.0:
        return 0.0, 0.0
    edges = np.searchsorted(t, np.arange(t[0], t[-1], 1.0))
    sums = np.cumsum(np.vstack([np.zeros((1, 3)), acc]), axis=0)
    grav = sums[edges[1:]] - sums[edges[:-1]]
    norm = np.linalg.norm(grav, axis=1)
    grav = grav / np.where(norm > 0, norm, 1.0)[:, None]
    tilt = np.degrees(np.arccos(np.clip(np.sum(grav[1:] * grav[:-1], axis=1), -1, 1)))
    # the gyro's rotation between the same two windows' middles
    angle = np.vstack([np.zeros((1, 3)), np.cumsum(gyro[:-1] * np.diff(t)[:, None], axis=0)])
    mid = (edges[1:] + edges[:-1]) // 2
    turned = np.linalg.norm(angle[mid[1:]] - angle[mid[:-1]], axis=1)
    moved = (tilt > min_deg) & (norm[1:] > 0) & (norm[:-1] > 0)
    return float(tilt[moved].sum()), float(turned[moved].sum())


def median_step(t: np.ndarray) -> float:
    dt = np.diff(t[np.isfinite(t)])
    dt = dt[dt > 0]
    return float(np.median(dt)) if len(dt) >= 2 else float("nan")


def open_recording(path: str | Path, units: Units | None = None, *,
                   log_warnings: bool = True) -> RecordingReader:
    """A recording to iterate: CSV, CSV.gz or .ssrec, told by content (``-``: stdin)."""
    return RecordingReader(path, units, log_warnings=log_warnings)


def read_samples(path: str | Path, units: Units | None = None) -> SampleChunk:
    """The whole recording as one SampleChunk (warnings are logged)."""
    return SampleChunk.concat(list(open_recording(path, units)))
