"""Register maps as data: registers, bit fields and the tables that decode them.

In the style of Adafruit's ``adafruit_register`` (``RWBits(num_bits, address, lowest_bit)``),
a chip's register map is written once as plain data. The same `Field` objects serve
three users, so they can never disagree:

- drivers read and write them over a bus (``Field`` is a descriptor on a `RegisterBlock`);
- the emulators decode configuration writes with ``Field.get(byte)``;
- documentation and tests list them (`RegisterMap`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol


class SMBusLike(Protocol):
    """The subset of ``smbus2.SMBus`` the drivers use (the emulator provides the same)."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...
    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Register:
    """One 8-bit register: its address, power-on value and access ("r", "rw")."""

    name: str
    addr: int
    reset: int = 0x00
    access: str = "rw"
    doc: str = ""


@dataclass(frozen=True)
class Field:
    """Bits ``lsb .. lsb+width-1`` of a register, optionally with a code → meaning table.

    As a class attribute of a `RegisterBlock` it reads/writes the chip (read-modify-write
    for partial registers), like Adafruit's ``RWBits``.
    """

    reg: Register
    lsb: int
    width: int = 1
    codes: tuple[tuple[int, float], ...] = ()
    doc: str = ""

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def get(self, byte: int) -> int:
        return (byte & self.mask) >> self.lsb

    def put(self, byte: int, value: int) -> int:
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"{self.reg.name}[{self.lsb + self.width - 1}:{self.lsb}] "
                             f"cannot hold {value}")
        return (byte & ~self.mask & 0xFF) | (value << self.lsb)

    def meaning(self, code: int) -> float | None:
        """The physical value of a code (a range, a rate), or None if the code is unused."""
        return dict(self.codes).get(code)

    def nearest(self, value: float, *, at_least: bool = False) -> tuple[int, float]:
        """The code whose meaning is closest to ``value`` (or the smallest ≥ it)."""
        options = sorted(self.codes, key=lambda cv: cv[1])
        if at_least:
            bigger = [cv for cv in options if cv[1] >= value - 1e-9]
            if bigger:
                return bigger[0]
            return options[-1]
        return min(options, key=lambda cv: abs(cv[1] - value))

    def __get__(self, obj: RegisterBlock | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return self.get(obj.read_reg(self.reg.addr))

    def __set__(self, obj: RegisterBlock, value: int) -> None:
        full = self.mask == 0xFF
        old = 0 if full else obj.read_reg(self.reg.addr)
        obj.write_reg(self.reg.addr, self.put(old, value))


class RegisterBlock:
    """A chip at one address on a bus; subclasses declare `Field` class attributes."""

    def __init__(self, bus: SMBusLike, address: int):
        self.bus = bus
        self.address = address

    def read_reg(self, addr: int) -> int:
        return self.bus.read_byte_data(self.address, addr)

    def write_reg(self, addr: int, value: int) -> None:
        self.bus.write_byte_data(self.address, addr, value & 0xFF)

    def read_block(self, addr: int, length: int) -> bytes:
        """Up to 32 bytes in one SMBus block read (the kernel's I2C_SMBUS_BLOCK_MAX)."""
        return bytes(self.bus.read_i2c_block_data(self.address, addr, length))


class RegisterMap:
    """All registers of a chip (for reset images, documentation and tests)."""

    def __init__(self, name: str, registers: Iterable[Register]):
        self.name = name
        self.registers = {r.name: r for r in registers}
        self.by_addr = {r.addr: r for r in self.registers.values()}

    def __getitem__(self, name: str) -> Register:
        return self.registers[name]

    def reset_image(self) -> bytearray:
        """256 bytes holding every register's power-on value (unmapped addresses read 0)."""
        image = bytearray(256)
        for r in self.registers.values():
            image[r.addr] = r.reset
        return image

    def read_only(self) -> frozenset[int]:
        return frozenset(r.addr for r in self.registers.values() if r.access == "r")


def codes(*pairs: tuple[int, float]) -> tuple[tuple[int, float], ...]:
    """A code → meaning table, written in datasheet order."""
    return tuple(pairs)
