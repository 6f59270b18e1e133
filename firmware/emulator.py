"""A register-level emulated I2C bus, shaped like ``smbus2.SMBus``, hosting emulated IMUs.

Each emulated chip keeps a 256-byte register file initialised from its datasheet reset
values, samples a `MotionSource` at its own output data rate on the bus's clock (so a
virtual clock gives accelerated time), quantises to int16 counts at the configured full
scale (saturating at the rails), and fills a FIFO with the chip's own byte format and
overflow behaviour. It adds no noise: the motion source supplies noise and bias, so the
chain is deterministic.

Generation is lazy and vectorised: whenever the bus touches a chip, all samples due since
the last touch are produced in one numpy step.
"""

from __future__ import annotations

import ctypes
import errno
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from spinesense.firmware.bus import BusStats, smbus_shape
from spinesense.firmware.faults import FaultPlan, bus_error
from spinesense.firmware.motion import MotionSource, StaticMotion
from spinesense.firmware.registers import RegisterMap

I2C_M_RD = 0x0001
SMBUS_BLOCK_MAX = 32


class EmulatedChip:
    """Timeline, quantisation and FIFO storage shared by the emulated families.

    Subclasses provide the register map and decode their configuration registers:
    `timeline_hz`, `scales`, `fifo_active`, `encode_fifo`, `read_regs`, `write_reg`.
    """

    chip = ""
    register_map: RegisterMap
    fifo_capacity = 0        # bytes
    fifo_unit = 1            # overwrite granularity in bytes (MPU bytes, ST words)
    default_address = 0x68

    def __init__(self, motion: MotionSource | None = None, *, odr_error: float = 0.0,
                 temperature_c: float = 25.0):
        self.motion: MotionSource = motion or StaticMotion()
        self.odr_error = odr_error          # the chip's clock: actual = nominal × (1 + err)
        self.temperature_c = temperature_c
        self.epoch = 0.0                    # clock value at motion time 0
        self.powered = True
        self.samples_generated = 0
        self.power_on(0.0)

    # -- power and timeline ---------------------------------------------------------------
    def power_on(self, now: float) -> None:
        """Power-on reset: registers to their reset values, FIFO empty, sampling restarts."""
        self.powered = True
        self.regs = self.register_map.reset_image()
        self.fifo = bytearray()
        self.fifo_written = 0               # units written since the FIFO was last reset
        self.overflowed = False
        self.latest_acc = np.zeros(3, np.int32)
        self.latest_gyro = np.zeros(3, np.int32)
        self._restart(now)

    def power_off(self) -> None:
        self.powered = False
        self.fifo = bytearray()

    def _restart(self, now: float) -> None:
        self.t_start = now
        self.k = 0
        self.now = now
        self.rate = self.timeline_hz() * (1.0 + self.odr_error)

    def reconfigured(self) -> None:
        """Call after a configuration write: a new ODR restarts the sample timeline."""
        rate = self.timeline_hz() * (1.0 + self.odr_error)
        if rate != self.rate:
            self._restart(self.now)

    def advance(self, now: float) -> None:
        """Produce every sample due by ``now`` (one vectorised motion evaluation)."""
        if now <= self.now:
            return
        self.now = now
        if not self.powered or self.rate <= 0:
            return
        k_now = math.floor((now - self.t_start) * self.rate + 1e-9)
        if k_now <= self.k:
            return
        first = self.k + 1
        frame = max(1, self.frame_bytes())
        keep = self.fifo_capacity // frame + 2 if self.fifo_active() else 1
        if k_now - first + 1 > keep:         # long idle: older samples are overwritten anyway
            skipped = k_now - keep + 1 - first
            if self.fifo_active() and skipped > 0:
                self.overflowed = True
                self.fifo_written += skipped * (frame // self.fifo_unit)
            first = k_now - keep + 1
        ks = np.arange(first, k_now + 1)
        t = self.t_start + ks / self.rate - self.epoch
        acc_g, gyro_dps = self.motion.sample(t)
        acc_lsb, gyro_lsb = self.scales()
        acc = quantise(acc_g, acc_lsb)
        gyro = quantise(gyro_dps, gyro_lsb)
        self.latest_acc, self.latest_gyro = acc[-1], gyro[-1]
        if self.fifo_active():
            self.push(self.encode_fifo(acc, gyro, ks), len(ks))
        self.k = k_now
        self.samples_generated += len(ks)

    # -- FIFO storage ---------------------------------------------------------------------
    def push(self, data: bytes, samples: int) -> None:
        frame = len(data) // max(samples, 1)
        if self.stop_when_full():
            room = (self.fifo_capacity - len(self.fifo)) // max(frame, 1) * frame
            if room < len(data):
                self.overflowed = True
                data = data[:room]
            self.fifo += data
        else:
            self.fifo += data
            excess = len(self.fifo) - self.fifo_capacity
            if excess > 0:
                excess = -(-excess // self.fifo_unit) * self.fifo_unit
                del self.fifo[:excess]
                self.overflowed = True
        self.fifo_written += len(data) // self.fifo_unit

    def pop(self, n: int) -> bytes:
        out = bytes(self.fifo[:n])
        del self.fifo[:n]
        return out + bytes(n - len(out))

    def clear_fifo(self) -> None:
        self.fifo = bytearray()
        self.fifo_written = 0
        self.overflowed = False

    def force_overflow(self) -> None:
        """What a host stall does: the oldest data are overwritten and the flag is raised.

        Drops a few units that are not a whole frame, so an MPU's frames misalign as on
        a real overflow (the reason the driver must reset the FIFO afterwards).
        """
        if not self.powered:
            return
        drop = min(len(self.fifo), 5 * self.fifo_unit)
        del self.fifo[:drop]
        self.overflowed = True

    # -- register access ------------------------------------------------------------------
    def read(self, reg: int, length: int) -> bytes:
        if not self.powered:
            raise bus_error(errno.EREMOTEIO)
        return self.read_regs(reg, length)

    def write(self, reg: int, data: bytes) -> None:
        if not self.powered:
            raise bus_error(errno.EREMOTEIO)
        for i, value in enumerate(data):
            self.write_reg(reg + i if self.auto_increment() else reg, value)

    def plain_read(self, reg: int, length: int) -> bytes:
        """Auto-incrementing read of ordinary registers, with live values patched in."""
        return bytes(self.live(r & 0xFF) for r in range(reg, reg + length))

    # -- subclass hooks -------------------------------------------------------------------
    def timeline_hz(self) -> float:
        raise NotImplementedError

    def scales(self) -> tuple[float, float]:
        """LSB per g and LSB per deg/s at the configured full scales."""
        raise NotImplementedError

    def fifo_active(self) -> bool:
        raise NotImplementedError

    def stop_when_full(self) -> bool:
        return False

    def frame_bytes(self) -> int:
        raise NotImplementedError

    def encode_fifo(self, acc: np.ndarray, gyro: np.ndarray, ks: np.ndarray) -> bytes:
        raise NotImplementedError

    def read_regs(self, reg: int, length: int) -> bytes:
        raise NotImplementedError

    def live(self, reg: int) -> int:
        return self.regs[reg]

    def write_reg(self, reg: int, value: int) -> None:
        raise NotImplementedError

    def auto_increment(self) -> bool:
        return True


def quantise(values: np.ndarray, lsb_per_unit: float) -> np.ndarray:
    """Round to int16 counts and saturate at the rails, as the ADC does."""
    return np.clip(np.rint(np.asarray(values) * lsb_per_unit), -32768, 32767).astype(np.int32)


class EmulatedBus:
    """``smbus2.SMBus`` look-alike: chips at addresses, faults, and traffic counting."""

    def __init__(self, bus: int = 1, *, clock: Callable[[], float] = time.monotonic,
                 faults: FaultPlan | None = None):
        self.bus_number = bus
        self.clock = clock
        self.faults = faults or FaultPlan()
        self.chips: dict[int, EmulatedChip] = {}
        self.stats = BusStats()
        self.t_origin = clock()
        self.closed = False

    def attach(self, chip: EmulatedChip, address: int | None = None) -> EmulatedChip:
        """Put a chip on the bus; its motion time 0 is now."""
        now = self.clock()
        chip.epoch = now
        chip.power_on(now)
        self.chips[chip.default_address if address is None else address] = chip
        return chip

    def _chip(self, address: int, method: str, args: tuple[Any, ...]) -> EmulatedChip:
        lengths, data = smbus_shape(method, args)
        if self.closed:
            raise bus_error(errno.EBADF)
        now = self.clock()
        chip = self.chips.get(address)
        error = self.faults.check(now - self.t_origin, address, chip, self.t_origin)
        if error is None and chip is None:
            error = bus_error(self.faults.nack_errno)
        if error is None and chip is not None:
            chip.advance(now)
            if not chip.powered:
                error = bus_error(self.faults.nack_errno)
        if error is not None:
            self.stats.add(lengths, 0, ok=False)
            raise error
        self.stats.add(lengths, data)
        assert chip is not None
        return chip

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self._chip(i2c_addr, "read_byte_data", (i2c_addr, register)).read(register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        chip = self._chip(i2c_addr, "write_byte_data", (i2c_addr, register, value))
        chip.write(register, bytes([value & 0xFF]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        if not 0 < length <= SMBUS_BLOCK_MAX:
            raise ValueError(f"SMBus block reads are 1..{SMBUS_BLOCK_MAX} bytes, not {length}")
        chip = self._chip(i2c_addr, "read_i2c_block_data", (i2c_addr, register, length))
        return list(chip.read(register, length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None:
        if len(data) > SMBUS_BLOCK_MAX:
            raise ValueError(f"SMBus block writes are at most {SMBUS_BLOCK_MAX} bytes")
        chip = self._chip(i2c_addr, "write_i2c_block_data", (i2c_addr, register, data))
        chip.write(register, bytes(data))

    def i2c_rdwr(self, *msgs: Any) -> None:
        """Combined transaction: a write sets the register pointer, reads continue from it."""
        if not msgs:
            return
        address = msgs[0].addr
        if any(m.addr != address for m in msgs):
            raise ValueError("emulated i2c_rdwr supports one address per transaction")
        chip = self._chip(address, "i2c_rdwr", msgs)
        pointer = 0
        for m in msgs:
            if m.flags & I2C_M_RD:
                ctypes.memmove(m.buf, chip.read(pointer, m.len), m.len)
            else:
                payload = bytes(m)
                if payload:
                    pointer = payload[0]
                    if len(payload) > 1:
                        chip.write(pointer, payload[1:])

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> EmulatedBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
