"""One way to read a recording, whatever its format: `open_recording(path)`.

It tells the format by the file's first bytes, not its name: the DESIGN A1 CSV, the same
gzip-compressed, or the native ``.ssrec`` of ``spinesense record``. Every command that
reads a recording (replay, report --recording, tune) goes through here, so each of them
reads the same formats, checks the units the same way and warns about the same damage.

Units: DESIGN A1 wants acceleration in g and ``t`` in seconds. A CSV in m/s² (a still
magnitude of about 9.8), in milli-g (about 1000), or with ``t`` in milliseconds is refused
with a one-line error that names the likely unit and the option that converts it
(``--accel-unit``, ``--time-unit``); given those, the reader converts and checks again.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from spinesense.edge.csvread import BLOCK_BYTES, RecordingError, iter_csv, open_bytes
from spinesense.samples import SampleChunk

log = logging.getLogger(__name__)

SSREC_MAGIC = b"SPINEREC"
ACCEL_UNITS = {"g": 1.0, "m/s2": 1 / 9.80665, "mg": 1e-3}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
SSREC_CHUNK = 100_000  # samples per chunk handed on from a .ssrec (its blocks hold ~1 s)

# still magnitude ranges (in the file's numbers) that identify an acceleration unit
_ACCEL_GUESSES = (("m/s2", 4.0, 20.0, "m/s²"), ("mg", 400.0, 2000.0, "milli-g"))
# median sample interval ranges (in the file's numbers) that identify a time unit
_TIME_GUESSES = (("ms", 1.0, 100.0, "milliseconds"), ("us", 1000.0, 100_000.0,
                                                       "microseconds"))


class Recording:
    """An open recording: iterate it for SampleChunks (in g, deg/s and seconds).

    ``warnings`` collects what was lost or converted, complete once iterated (each is also
    logged unless ``log_warnings`` is false); ``format`` is csv, csv.gz or ssrec.
    """

    def __init__(self, path: str | Path, *, accel_unit: str = "auto", time_unit: str = "auto",
                 block_bytes: int = BLOCK_BYTES, log_warnings: bool = True):
        for name, value, allowed in (("--accel-unit", accel_unit, ACCEL_UNITS),
                                     ("--time-unit", time_unit, TIME_UNITS)):
            if value != "auto" and value not in allowed:
                raise RecordingError(f"{name} {value!r}: choose one of "
                                     f"{', '.join(allowed)}")
        self.path = Path(path)
        self.accel_unit = accel_unit
        self.time_unit = time_unit
        self.block_bytes = block_bytes
        self.log_warnings = log_warnings
        self.warnings: list[str] = []
        self.format = ""
        self.samples = 0

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
            for chunk in source:
                self.samples += len(chunk)
                yield chunk
        finally:
            if fh is not sys.stdin.buffer:
                fh.close()
            if self.log_warnings:
                for note in self.warnings:
                    log.warning("%s", note)

    # -- CSV -------------------------------------------------------------------------
    def _csv(self, fh: BinaryIO) -> Iterator[SampleChunk]:
        acc_scale = time_scale = None
        for chunk in iter_csv(self.path, block_bytes=self.block_bytes,
                              warnings=self.warnings, fh=fh):
            if acc_scale is None:
                acc_scale = self._accel_scale(chunk)
                time_scale = self._time_scale(chunk)
            if acc_scale != 1.0 or time_scale != 1.0:
                chunk = SampleChunk(chunk.t * time_scale, chunk.acc * acc_scale, chunk.gyro,
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
        for unit, lo, hi, name in _TIME_GUESSES:
            if lo <= dt <= hi:
                epoch = " since the Unix epoch" if unit == "ms" and chunk.t[0] > 1e11 else ""
                raise RecordingError(f"{self.path}: t looks like {name}{epoch}, not seconds "
                                     f"(rows {dt:g} apart, {1 / (dt * TIME_UNITS[unit]):.0f} "
                                     f"Hz in {name}); pass --time-unit {unit} to convert, or "
                                     "write t in seconds")
        raise RecordingError(f"{self.path}: t steps by {dt:g} between rows: seconds need 25 "
                             "to 400 samples a second; pass --time-unit s|ms|us to say "
                             "which unit t is in")

    # -- .ssrec ----------------------------------------------------------------------
    def _ssrec(self, fh: BinaryIO) -> Iterator[SampleChunk]:
        from spinesense.firmware.recording import KIND_DATA, iter_blocks

        if self.accel_unit not in ("auto", "g") or self.time_unit not in ("auto", "s"):
            raise RecordingError(f"{self.path}: a .ssrec stores its own units; "
                                 "--accel-unit and --time-unit apply to CSV files only")
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


def median_step(t: np.ndarray) -> float:
    dt = np.diff(t[np.isfinite(t)])
    dt = dt[dt > 0]
    return float(np.median(dt)) if len(dt) >= 2 else float("nan")


def open_recording(path: str | Path, *, accel_unit: str = "auto", time_unit: str = "auto",
                   log_warnings: bool = True) -> Recording:
    """A recording to iterate: CSV, CSV.gz or .ssrec, told by content (``-``: stdin)."""
    return Recording(path, accel_unit=accel_unit, time_unit=time_unit,
                     log_warnings=log_warnings)


def read_samples(path: str | Path, *, accel_unit: str = "auto",
                 time_unit: str = "auto") -> SampleChunk:
    """The whole recording as one SampleChunk (warnings are logged)."""
    return SampleChunk.concat(list(open_recording(path, accel_unit=accel_unit,
                                                  time_unit=time_unit)))
