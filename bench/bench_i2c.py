"""I2C traffic at 100 Hz: FIFO bursts against per-register polling, on the emulated bus.

Both ways read the same chip for the same (virtual) minute; the emulated bus counts what
a logic analyser would: transactions (START..STOP), bytes on the wire (address, register
and data bytes) and the bus time they take at 400 kHz. The ratio is measured in the same
run. A second part measures how many samples per second `open_sensor` sustains on an
emulated chip with a virtual clock (what `edge run --emulate --speed` relies on), against
the 50 k samples/s it needs.

    .venv/bin/python bench/bench_i2c.py [--seconds 60] [--sustain-minutes 120]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from spinesense.config import SensorConfig
from spinesense.firmware.chips import CHIPS, DRIVERS
from spinesense.firmware.emulated_chips import make_chip
from spinesense.firmware.emulator import EmulatedBus
from spinesense.firmware.motion import ArrayMotion, StaticMotion
from spinesense.firmware.reader import open_sensor

RATE_HZ = 100.0
SUSTAIN_TARGET = 50_000.0


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fifo_traffic(chip: str, seconds: float) -> tuple[dict[str, float], int]:
    """The reader's way: one FIFO drain every read_interval_s."""
    clock = VirtualClock()
    cfg = SensorConfig(rate_hz=RATE_HZ)
    reader = open_sensor(cfg, emulate=chip, clock=clock, odr_error=0.0)
    bus = reader.emulator
    start = bus.stats.as_dict()
    samples = 0
    for _ in range(round(seconds / cfg.read_interval_s)):
        clock.now += cfg.read_interval_s
        chunk, _events = reader.poll()
        samples += 0 if chunk is None else len(chunk)
    return per_second(bus, start, seconds), samples


def register_polling_traffic(chip: str, seconds: float,
                             block: bool = False) -> tuple[dict[str, float], int]:
    """The naive way: per sample, poll data-ready, then read each output byte alone
    (``block``: the common middle way, one 12-byte block read per sample)."""
    clock = VirtualClock()
    bus = EmulatedBus(clock=clock)
    emu = bus.attach(make_chip(chip, StaticMotion((0.1, 0.2, 0.97), (1, 2, 3))))
    driver = DRIVERS[chip](bus, emu.default_address, rate_hz=RATE_HZ, sleep=lambda s: None)
    driver.init()
    mpu = chip.startswith("mpu")
    status_reg, ready_mask = (0x3A, 0x01) if mpu else (0x1E, 0x03)   # DATA_RDY / XLDA+GDA
    data_regs = (list(range(0x3B, 0x41)) + list(range(0x43, 0x49)) if mpu
                 else list(range(0x22, 0x2E)))
    start = bus.stats.as_dict()
    period = 1.0 / driver.settings.rate_hz
    samples = 0
    for _ in range(round(seconds / period)):
        clock.now += period
        if not bus.read_byte_data(emu.default_address, status_reg) & ready_mask:
            continue
        if block:
            raw = (bytes(bus.read_i2c_block_data(emu.default_address, 0x3B, 6))
                   + bytes(bus.read_i2c_block_data(emu.default_address, 0x43, 6)) if mpu
                   else bytes(bus.read_i2c_block_data(emu.default_address, 0x22, 12)))
        else:
            raw = bytes(bus.read_byte_data(emu.default_address, r) for r in data_regs)
        samples += 1
    assert len(raw) == 12
    return per_second(bus, start, seconds), samples


def per_second(bus: EmulatedBus, start: dict[str, int], seconds: float) -> dict[str, float]:
    end = bus.stats.as_dict()
    d = {k: (end[k] - start[k]) / seconds for k in end}
    d["occupancy"] = d["bits"] / 400_000
    return d


def sustained_rate(chip: str, minutes: float) -> float:
    """Samples per wall-clock second through open_sensor, virtual clock, array motion."""
    n = int(minutes * 60 * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    acc = np.column_stack([0.2 * np.sin(t), 0.1 * np.cos(0.3 * t), np.sqrt(0.95 + 0 * t)])
    gyro = np.column_stack([5 * np.cos(t), np.sin(2 * t), 0 * t])
    motion = ArrayMotion(t, acc, gyro)
    clock = VirtualClock()
    cfg = SensorConfig(rate_hz=RATE_HZ)
    reader = open_sensor(cfg, emulate=chip, motion=motion, clock=clock)
    samples = 0
    t0 = time.perf_counter()
    for _ in range(round(minutes * 60 / cfg.read_interval_s)):
        clock.now += cfg.read_interval_s
        chunk, _events = reader.poll()
        samples += 0 if chunk is None else len(chunk)
    return samples / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="virtual seconds per run")
    parser.add_argument("--sustain-minutes", type=float, default=120.0,
                        help="virtual minutes for the throughput run (default: 2 h)")
    parser.add_argument("--chips", default=",".join(CHIPS))
    args = parser.parse_args()
    chips = args.chips.split(",")

    print(f"I2C traffic at {RATE_HZ:g} Hz ({args.seconds:g} virtual s each, accel + gyro; "
          "bus time at 400 kHz)")
    print(f"{'chip':<11} {'mode':<22} {'trans/s':>8} {'bytes/s':>8} {'bus busy':>8} "
          f"{'samples/s':>9}")
    ratios = []
    for chip in chips:
        fifo, n_fifo = fifo_traffic(chip, args.seconds)
        poll, n_poll = register_polling_traffic(chip, args.seconds)
        blk, n_blk = register_polling_traffic(chip, args.seconds, block=True)
        for mode, d, n in (("FIFO burst every 0.25s", fifo, n_fifo),
                           ("per-register polling", poll, n_poll),
                           ("per-sample block read", blk, n_blk)):
            print(f"{chip:<11} {mode:<22} {d['transactions']:8.1f} {d['wire_bytes']:8.0f} "
                  f"{100 * d['occupancy']:7.2f}% {n / args.seconds:9.1f}")
        ratio = poll["transactions"] / fifo["transactions"]
        ratios.append(ratio)
        print(f"{'':<11} ratio: polling needs {ratio:.0f}x the transactions and "
              f"{poll['wire_bytes'] / fifo['wire_bytes']:.1f}x the bytes of FIFO bursts "
              f"(per-sample block reads: {blk['transactions'] / fifo['transactions']:.0f}x "
              "the transactions)")
    print(f"transactions ratio (per-register polling / FIFO bursts): "
          f"min {min(ratios):.0f}x, max {max(ratios):.0f}x")

    print(f"\nopen_sensor throughput on a virtual clock ({args.sustain_minutes:g} virtual min "
          "at 100 Hz, 0.25 s bursts, interpolated motion)")
    for chip in chips:
        rate = sustained_rate(chip, args.sustain_minutes)
        print(f"{chip:<11} {rate / 1000:8.0f} k samples/s = {rate / SUSTAIN_TARGET:5.1f}x the "
              f"{SUSTAIN_TARGET / 1000:.0f} k samples/s target "
              f"({rate / RATE_HZ:.0f}x real time)")


if __name__ == "__main__":
    main()
