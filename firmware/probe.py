"""Finding the IMU: open /dev/i2c-N, probe the usual addresses, identify by WHO_AM_I.

Every failure ends in a message that says what to do (enable I2C, join the i2c group,
check the wiring), because this is the first thing a new user runs.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from spinesense.firmware.chips import OTHER_IDS, PROBE_ADDRESSES, SUPPORTED_IDS, family_addresses
from spinesense.firmware.invensense import WHO_AM_I as MPU_WHO_AM_I
from spinesense.firmware.reader import SensorError
from spinesense.firmware.registers import SMBusLike
from spinesense.firmware.st_lsm6 import WHO_AM_I as ST_WHO_AM_I

NAMES = {"mpu6050": "MPU-6050", "mpu6500": "MPU-6500", "mpu9250": "MPU-9250",
         "lsm6ds3": "LSM6DS3", "lsm6dso": "LSM6DSO", "lsm6dsox": "LSM6DSOX",
         "ism330dhcx": "ISM330DHCX"}
WIRING = ("SDA → pin 3 (GPIO2), SCL → pin 5 (GPIO3), 3V3 → pin 1, GND → pin 6")


@dataclass(frozen=True)
class Found:
    """A device that answered at ``address``."""

    address: int
    register: int | None       # the WHO_AM_I register that identified it
    who_am_i: int | None
    chips: tuple[str, ...]     # supported chip names (empty if unsupported/unknown)
    name: str                  # what to call it

    @property
    def supported(self) -> bool:
        return bool(self.chips)

    def line(self) -> str:
        ident = (f"WHO_AM_I[0x{self.register:02X}] = 0x{self.who_am_i:02X}"
                 if self.register is not None else "no known WHO_AM_I")
        status = ("supported: chip = " + " or ".join(self.chips) if self.supported
                  else "not supported by spinesense")
        return f"0x{self.address:02X}  {self.name:<18} {ident}  ({status})"


def enable_i2c_hint(bus: int) -> str:
    return ("enable I2C with `sudo raspi-config nonint do_i2c 0`, or add "
            "`dtparam=i2c_arm=on,i2c_arm_baudrate=400000` to /boot/firmware/config.txt, "
            f"then reboot and check with `i2cdetect -y {bus}`")


def open_bus(bus: int) -> SMBusLike:
    """``smbus2.SMBus(bus)`` with the fix spelled out when it cannot be opened."""
    from smbus2 import SMBus

    path = f"/dev/i2c-{bus}"
    try:
        return SMBus(bus)
    except FileNotFoundError:
        others = sorted(p for p in glob.glob("/dev/i2c-*") if p != path)
        present = (f" Buses present: {', '.join(others)} (pick one with --bus N or "
                   "sensor.bus)." if others else "")
        raise SensorError(f"I2C bus {bus} is not available ({path} does not exist): "
                          f"{enable_i2c_hint(bus)}.{present}") from None
    except PermissionError:
        raise SensorError(f"{path}: permission denied; add your user to the i2c group "
                          "(`sudo usermod -aG i2c $USER`) and log in again") from None
    except OSError as exc:
        raise SensorError(f"{path}: cannot open ({os.strerror(exc.errno or 0)})") from None


def identify(bus: SMBusLike, address: int) -> Found | None:
    """Ask one address for its WHO_AM_I; None if nothing acknowledges."""
    order = ((MPU_WHO_AM_I.addr, ST_WHO_AM_I.addr) if address in family_addresses("mpu6050")
             else (ST_WHO_AM_I.addr, MPU_WHO_AM_I.addr))
    answers: list[tuple[int, int]] = []
    for reg in order:
        try:
            value = bus.read_byte_data(address, reg)
        except OSError:
            if not answers:
                return None          # no acknowledge: nothing at this address
            continue
        answers.append((reg, value))
        if (reg, value) in SUPPORTED_IDS:
            chips = SUPPORTED_IDS[(reg, value)]
            return Found(address, reg, value, chips, " / ".join(NAMES[c] for c in chips))
    for reg, value in answers:
        if (reg, value) in OTHER_IDS:
            return Found(address, reg, value, (), OTHER_IDS[(reg, value)])
    reg, value = answers[0]
    return Found(address, reg, value, (), "unknown device")


def scan(bus: SMBusLike, addresses: tuple[int, ...] = PROBE_ADDRESSES) -> list[Found]:
    return [f for f in (identify(bus, a) for a in addresses) if f is not None]


def nothing_answers(bus_number: int, addresses: tuple[int, ...]) -> str:
    where = ", ".join(f"0x{a:02X}" for a in addresses)
    return (f"no IMU answered on I2C bus {bus_number} at {where}. Check the wiring "
            f"({WIRING}), that the board gets 3.3 V, and the cable (I2C is for short runs: "
            f"under ~1 m at 400 kHz); `i2cdetect -y {bus_number}` lists every address that "
            "answers")


def resolve(bus: SMBusLike, chip: str, address: int, *, bus_number: int = 1) -> tuple[str, int]:
    """The chip name and address to drive, from the config's ``chip``/``address``."""
    addresses = ((address,) if address else
                 PROBE_ADDRESSES if chip == "auto" else family_addresses(chip))
    found = scan(bus, addresses)
    usable = [f for f in found if f.supported and (chip == "auto" or chip in f.chips)]
    if usable:
        f = usable[0]
        return (f.chips[0] if chip == "auto" else chip), f.address
    if not found:
        raise SensorError(nothing_answers(bus_number, addresses))
    seen = "; ".join(f.line() for f in found)
    want = "a supported IMU" if chip == "auto" else NAMES.get(chip, chip)
    raise SensorError(f"expected {want} but found: {seen}. Set sensor.chip to the chip you "
                      "have (or auto) and sensor.address to its address (or 0 to probe)")
