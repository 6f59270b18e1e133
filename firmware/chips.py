"""Which driver serves which chip, and how WHO_AM_I answers identify them."""

from __future__ import annotations

from spinesense.firmware import invensense, st_lsm6
from spinesense.firmware.imu import ImuDriver

DRIVERS: dict[str, type[ImuDriver]] = {
    "mpu6050": invensense.MPU6050, "mpu6500": invensense.MPU6500,
    "mpu9250": invensense.MPU9250, "lsm6ds3": st_lsm6.LSM6DS3, "lsm6dso": st_lsm6.LSM6DSO,
    "lsm6dsox": st_lsm6.LSM6DSOX, "ism330dhcx": st_lsm6.ISM330DHCX,
}
CHIPS = tuple(DRIVERS)
PROBE_ADDRESSES = invensense.ADDRESSES + st_lsm6.ADDRESSES

# (WHO_AM_I register, value) → supported chip names. LSM6DSO and LSM6DSOX both answer
# 0x6C and are driven identically here, so 0x6C is reported as both.
SUPPORTED_IDS: dict[tuple[int, int], tuple[str, ...]] = {
    (invensense.WHO_AM_I.addr, 0x68): ("mpu6050",),
    (invensense.WHO_AM_I.addr, 0x70): ("mpu6500",),
    (invensense.WHO_AM_I.addr, 0x71): ("mpu9250",),
    (st_lsm6.WHO_AM_I.addr, 0x69): ("lsm6ds3",),
    (st_lsm6.WHO_AM_I.addr, 0x6C): ("lsm6dso", "lsm6dsox"),
    (st_lsm6.WHO_AM_I.addr, 0x6B): ("ism330dhcx",),
}
# Relatives that answer at the same addresses but are not supported (named, so the user
# knows what they have).
OTHER_IDS: dict[tuple[int, int], str] = {
    (invensense.WHO_AM_I.addr, 0x19): "MPU-6886",
    (invensense.WHO_AM_I.addr, 0x11): "ICM-20600",
    (invensense.WHO_AM_I.addr, 0x12): "ICM-20602",
    (invensense.WHO_AM_I.addr, 0x98): "ICM-20689",
    (invensense.WHO_AM_I.addr, 0x47): "ICM-42688-P",
    (st_lsm6.WHO_AM_I.addr, 0x6A): "LSM6DSL/LSM6DSM",
}


def family_addresses(chip: str) -> tuple[int, ...]:
    return invensense.ADDRESSES if chip in invensense.MODELS else st_lsm6.ADDRESSES
