"""The guided calibration behind `spinesense calibrate`.

Two steps: upright and still (gives ``up``), then a slow lean forward and back (gives
``forward``: the direction gravity's reaction swings in the sensor frame, and with it the
board's facing, which this calibration then uses whatever ``[sensor] mount`` says). With
``emulate`` the sensor is an emulated chip driven by the simulator's "calibration"
scenario on a virtual clock, so the whole procedure runs in a fraction of a second and
can be tested without hardware.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from spinesense.cli import CliError
from spinesense.config import Config
from spinesense.edge.calibration import (
    Calibration,
    CalibrationError,
    forward_from_lean,
    upright_from_still,
)
from spinesense.samples import SampleChunk

SETTLE_S = 2.0  # ignored at the start of the still step (the wearer settles)


class _VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _collect(reader, seconds: float, clock: Callable[[], float],
             advance: Callable[[float], None]) -> SampleChunk:
    chunks: list[SampleChunk] = []
    start = clock()
    while clock() - start < seconds:
        advance(reader.info.fifo_capacity_s / 4 if hasattr(reader.info, "fifo_capacity_s")
                else 0.25)
        chunk, _events = reader.poll()
        if chunk is not None and len(chunk):
            chunks.append(chunk)
    if not chunks:
        raise CliError("the sensor delivered no samples; check the wiring "
                       "(`spinesense sensor probe`)")
    return SampleChunk.concat(chunks)


def run_guided(cfg: Config, *, emulate: str | None = None, seed: int = 0,
               interactive: bool = True, still_s: float = 8.0, lean_s: float = 8.0,
               say: Callable[[str], None] = print) -> Calibration:
    from spinesense.firmware import open_sensor

    motion = None
    lean_at: float | None = None
    if emulate:
        from spinesense.firmware.simulator import simulate
        sim = simulate("calibration", seed, duration_s=40.0,
                       accel_only=not cfg.sensor.use_gyro)
        motion = sim.motion()
        lean_at = float(sim.truth["calibration"]["lean"]["start"]) - 0.5
        clock = _VirtualClock()

        def advance(dt: float) -> None:
            clock.now += dt
    else:
        clock = time.monotonic  # type: ignore[assignment]

        def advance(dt: float) -> None:
            time.sleep(dt)
    try:
        reader = open_sensor(cfg.sensor, emulate=emulate, motion=motion, clock=clock)
    except Exception as exc:  # SensorError and bus errors: one line, with the fix
        raise CliError(f"cannot open the sensor: {exc}") from None

    def step(text: str) -> None:
        say(text)
        if interactive:
            say("Press Enter when ready.")
            sys.stdin.readline()

    with reader:
        if hasattr(reader, "start"):
            reader.start()
        step(f"Step 1/2: sit (or stand) upright and still, looking ahead, for "
             f"{still_s:g} seconds.")
        still = _collect(reader, still_s, clock, advance)
        keep = still.t >= still.t[0] + min(SETTLE_S, still_s / 3)
        try:
            up = upright_from_still(still.acc[keep])
        except CalibrationError as exc:
            raise CliError(f"step 1: {exc}") from None
        say("Upright recorded.")
        if lean_at is not None and clock() < lean_at:  # the simulated wearer's own pace
            _collect(reader, lean_at - clock(), clock, advance)
        step(f"Step 2/2: now lean forward slowly, as far as is comfortable, hold a moment "
             f"and sit back up, within {lean_s:g} seconds.")
        lean = _collect(reader, lean_s, clock, advance)
        try:
            forward = forward_from_lean(up, lean.acc)
        except CalibrationError as exc:
            raise CliError(f"step 2: {exc}") from None
    tilt = np.degrees(np.arccos(np.clip(
        (lean.acc / np.linalg.norm(lean.acc, axis=1, keepdims=True)) @ up, -1, 1)))
    cal = Calibration(up=up, forward=forward, method="guided still step",
                      forward_method="guided lean")
    if cfg.sensor.mount not in ("auto", cal.facing):
        say(f"Note: the lean says the board is worn {cal.facing} ([sensor] mount is "
            f"{cfg.sensor.mount!r}); this calibration uses {cal.facing}.")
    say(f"Forward recorded (you leaned up to {np.percentile(tilt, 98):.0f}°; board "
        f"{cal.facing}).")
    return Calibration(up=up, forward=forward, method="guided still step",
                       forward_method="guided lean", facing=cal.facing, info={
                           "still_samples": int(keep.sum()), "lean_samples": len(lean),
                           "lean_deg": round(float(np.percentile(tilt, 98)), 1),
                           "emulated": bool(emulate)})
