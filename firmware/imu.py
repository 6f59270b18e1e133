"""What every IMU driver offers the reader: configure, drain the FIFO, convert to g and deg/s.

A driver is a `RegisterBlock` over any smbus2-shaped bus (``smbus2.SMBus(n)`` on a Pi, an
`EmulatedBus` in tests). Multi-byte FIFO drains use ``i2c_rdwr`` (one combined
write-register/read-N transaction) because SMBus block reads stop at 32 bytes.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from smbus2 import i2c_msg

from spinesense.firmware.registers import RegisterBlock, SMBusLike

# i2c-dev accepts at most 8192 bytes per message (I2C_RDWR); stay below it.
MAX_READ_BYTES = 8190
INT16_MIN, INT16_MAX = -32768, 32767


class ChipError(OSError):
    """The chip at the address is not the expected one (or answers garbage).

    An OSError (ENODEV), so that the reader treats it like any other bus failure: retry,
    re-initialise, report the sensor lost.
    """

    def __init__(self, message: str):
        super().__init__(errno.ENODEV, message)


@dataclass
class FifoRead:
    """One FIFO drain in physical units; ``overflow`` means data were lost before it."""

    acc_g: np.ndarray
    gyro_dps: np.ndarray | None
    saturated: np.ndarray
    overflow: bool = False
    raw_bytes: int = 0

    def __len__(self) -> int:
        return len(self.acc_g)


@dataclass
class Settings:
    """What the chip was actually set to (the nearest supported values to the request)."""

    rate_hz: float
    accel_range_g: float
    gyro_range_dps: float
    dlpf_hz: float
    acc_lsb_g: float
    gyro_lsb_dps: float
    codes: dict[str, int] = field(default_factory=dict)


def saturation(*counts: np.ndarray | None) -> np.ndarray:
    """True where any axis of any sensor sits at the int16 rails (full scale reached)."""
    flags = None
    for c in counts:
        if c is None:
            continue
        hit = np.any((c >= INT16_MAX) | (c <= INT16_MIN), axis=1)
        flags = hit if flags is None else flags | hit
    return flags if flags is not None else np.zeros(0, bool)


class ImuDriver(RegisterBlock):
    """Base class: subclasses fill in the register map and the FIFO format."""

    chip: str = ""            # the SensorConfig.chip name
    who_am_i: int = 0
    WHO_AM_I_REG: int = 0
    fifo_capacity_bytes: int = 0

    def __init__(self, bus: SMBusLike, address: int, *, rate_hz: float = 100.0,
                 accel_range_g: float = 4, gyro_range_dps: float = 500,
                 dlpf_hz: float = 20.0, use_gyro: bool = True,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(bus, address)
        self.use_gyro = use_gyro
        self.sleep = sleep
        self.fifo_suspect = False
        self.settings = self.choose(rate_hz, accel_range_g, gyro_range_dps, dlpf_hz)

    # -- subclass hooks -------------------------------------------------------------------
    def choose(self, rate_hz: float, accel_range_g: float, gyro_range_dps: float,
               dlpf_hz: float) -> Settings:
        raise NotImplementedError

    def configure(self) -> None:
        """Reset the chip, apply the settings and start the FIFO."""
        raise NotImplementedError

    def reset_fifo(self) -> None:
        raise NotImplementedError

    signature: tuple[int, int] = (0, 0)   # (register, value) that configure() leaves behind

    def configured(self) -> bool:
        """Whether the chip still holds our configuration (it loses it on a power glitch)."""
        reg, value = self.signature
        return self.read_reg(reg) == value

    def read_fifo(self) -> FifoRead:
        """Drain whatever whole samples the FIFO holds (a few transactions in all)."""
        raise NotImplementedError

    def read_sample(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The newest sample from the output registers (no FIFO), in g and deg/s."""
        raise NotImplementedError

    def read_temperature_c(self) -> float:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    @property
    def frame_bytes(self) -> int:
        """FIFO bytes per sample (accel + gyro as configured)."""
        raise NotImplementedError

    @property
    def fifo_capacity_samples(self) -> int:
        return self.fifo_capacity_bytes // self.frame_bytes

    def identify(self) -> int:
        return self.read_reg(self.WHO_AM_I_REG)

    def init(self) -> None:
        """Check WHO_AM_I, then configure; raises ChipError on a wrong or missing chip."""
        found = self.identify()
        if found != self.who_am_i:
            raise ChipError(f"expected {self.chip} (WHO_AM_I 0x{self.who_am_i:02X}) at "
                            f"0x{self.address:02X}, read 0x{found:02X}")
        self.configure()
        self.fifo_suspect = False

    def read_burst(self, reg: int, length: int) -> bytes:
        """One combined transaction: write the register address, read ``length`` bytes."""
        write = i2c_msg.write(self.address, [reg])
        read = i2c_msg.read(self.address, length)
        try:
            self.bus.i2c_rdwr(write, read)
        except OSError:
            # a transfer that failed part-way may have popped FIFO bytes: the reader must
            # not trust the FIFO's alignment until it has been reset
            self.fifo_suspect = True
            raise
        return bytes(read)

    def to_units(self, acc: np.ndarray, gyro: np.ndarray | None,
                 overflow: bool = False, raw_bytes: int = 0) -> FifoRead:
        s = self.settings
        return FifoRead(acc * s.acc_lsb_g,
                        None if gyro is None else gyro * s.gyro_lsb_dps,
                        saturation(acc, gyro), overflow, raw_bytes)

    def empty(self, overflow: bool = False) -> FifoRead:
        return FifoRead(np.zeros((0, 3)), np.zeros((0, 3)) if self.use_gyro else None,
                        np.zeros(0, bool), overflow)

    def describe(self) -> dict[str, float | int | str]:
        s = self.settings
        return {"chip": self.chip, "address": self.address, "rate_hz": s.rate_hz,
                "accel_range_g": s.accel_range_g,
                "gyro_range_dps": s.gyro_range_dps if self.use_gyro else 0,
                "dlpf_hz": s.dlpf_hz, "acc_lsb_g": s.acc_lsb_g,
                "gyro_lsb_dps": s.gyro_lsb_dps, "use_gyro": self.use_gyro,
                "fifo_capacity_samples": self.fifo_capacity_samples}
