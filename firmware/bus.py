"""Counting I2C traffic the way the bus sees it: transactions, wire bytes, bit time.

Shared by the emulator (the bus side) and the reader (which wraps a real ``smbus2.SMBus``
in `CountingBus`), so the benchmark and ``SensorReader.stats`` count the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spinesense.firmware.registers import SMBusLike

BUS_HZ = 400_000  # fast mode, what docs/sensors.md asks for


@dataclass
class BusStats:
    """Totals since creation. A transaction is one START..STOP (repeated starts inside)."""

    transactions: int = 0
    errors: int = 0
    wire_bytes: int = 0     # address bytes + register bytes + data bytes
    data_bytes: int = 0     # payload read or written
    bits: int = 0           # 9 bits per byte (8 + ACK) + START/Sr/STOP conditions

    def add(self, message_lengths: list[int], data: int, ok: bool = True) -> None:
        """One transaction made of messages with the given byte lengths (without address)."""
        self.transactions += 1
        self.errors += 0 if ok else 1
        wire = sum(message_lengths) + len(message_lengths)
        self.wire_bytes += wire
        self.data_bytes += data
        self.bits += 9 * wire + len(message_lengths) + 1

    def bus_seconds(self, bus_hz: float = BUS_HZ) -> float:
        return self.bits / bus_hz

    def as_dict(self) -> dict[str, int]:
        return {"transactions": self.transactions, "errors": self.errors,
                "wire_bytes": self.wire_bytes, "data_bytes": self.data_bytes, "bits": self.bits}


def smbus_shape(method: str, args: tuple[Any, ...]) -> tuple[list[int], int]:
    """Message lengths and payload of one smbus2 call (i2c_rdwr: its messages)."""
    if method == "read_byte_data":
        return [1, 1], 1
    if method == "write_byte_data":
        return [2], 1
    if method == "read_i2c_block_data":
        return [1, args[2]], args[2]
    if method == "write_i2c_block_data":
        return [1 + len(args[2])], len(args[2])
    if method == "i2c_rdwr":
        lengths = [m.len for m in args]
        reads = sum(m.len for m in args if m.flags & 0x0001)
        return lengths, reads
    raise ValueError(method)


class CountingBus:
    """Wraps any smbus2-shaped bus and counts its traffic in `stats`."""

    METHODS = ("read_byte_data", "write_byte_data", "read_i2c_block_data",
               "write_i2c_block_data", "i2c_rdwr")

    def __init__(self, bus: SMBusLike):
        self.inner = bus
        self.stats = BusStats()

    def _call(self, method: str, *args: Any) -> Any:
        lengths, data = smbus_shape(method, args)
        try:
            result = getattr(self.inner, method)(*args)
        except OSError:
            self.stats.add(lengths, 0, ok=False)
            raise
        self.stats.add(lengths, data)
        return result

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self._call("read_byte_data", i2c_addr, register)

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._call("write_byte_data", i2c_addr, register, value)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        return self._call("read_i2c_block_data", i2c_addr, register, length)

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None:
        self._call("write_i2c_block_data", i2c_addr, register, data)

    def i2c_rdwr(self, *msgs: Any) -> None:
        self._call("i2c_rdwr", *msgs)

    def close(self) -> None:
        self.inner.close()
