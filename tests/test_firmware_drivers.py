"""Every driver against its register-level emulator, checked against datasheet numbers.

The expected values here are typed in from the datasheets (not imported from the
drivers), so a wrong table in a driver or an emulator fails.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from smbus2 import i2c_msg

from spinesense.firmware.chips import DRIVERS
from spinesense.firmware.emulated_chips import make_chip
from spinesense.firmware.emulator import EmulatedBus
from spinesense.firmware.motion import StaticMotion

CHIPS = list(DRIVERS)
MPU = ["mpu6050", "mpu6500", "mpu9250"]
ST = ["lsm6ds3", "lsm6dso", "lsm6dsox", "ism330dhcx"]
WHO_AM_I = {"mpu6050": (0x75, 0x68), "mpu6500": (0x75, 0x70), "mpu9250": (0x75, 0x71),
            "lsm6ds3": (0x0F, 0x69), "lsm6dso": (0x0F, 0x6C), "lsm6dsox": (0x0F, 0x6C),
            "ism330dhcx": (0x0F, 0x6B)}
# LSB per g / LSB per deg/s: MPU-6050 PS §6.1-6.2 (same for 6500/9250)
MPU_ACC = {2: 16384, 4: 8192, 8: 4096, 16: 2048}
MPU_GYRO = {250: 131, 500: 65.5, 1000: 32.8, 2000: 16.4}
# mg/LSB and mdps/LSB: LSM6DS3 Table 3, LSM6DSO Table 2, ISM330DHCX Table 2
ST_ACC = {2: 0.061, 4: 0.122, 8: 0.244, 16: 0.488}
ST_GYRO = {125: 4.375, 250: 8.75, 500: 17.5, 1000: 35.0, 2000: 70.0, 4000: 140.0}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def setup(chip: str, motion=None, **settings):
    clock = Clock()
    bus = EmulatedBus(clock=clock)
    emu = bus.attach(make_chip(chip, motion or StaticMotion()))
    driver = DRIVERS[chip](bus, emu.default_address, sleep=lambda s: None, **settings)
    driver.init()
    return clock, bus, emu, driver


def lsb_per_unit(chip: str, acc_range: int, gyro_range: int) -> tuple[float, float]:
    if chip in MPU:
        return MPU_ACC[acc_range], MPU_GYRO[gyro_range]
    return 1000 / ST_ACC[acc_range], 1000 / ST_GYRO[gyro_range]


def gyro_ranges(chip: str) -> list[int]:
    if chip in MPU:
        return [250, 500, 1000, 2000]
    return [125, 250, 500, 1000, 2000] + ([4000] if chip == "ism330dhcx" else [])


@pytest.mark.parametrize("chip", CHIPS)
def test_who_am_i_is_the_datasheet_value(chip: str) -> None:
    _clock, bus, emu, driver = setup(chip)
    reg, value = WHO_AM_I[chip]
    assert bus.read_byte_data(emu.default_address, reg) == value
    assert driver.identify() == value


@pytest.mark.parametrize("chip", CHIPS)
def test_every_range_scale_factor_within_0_1_percent(chip: str) -> None:
    for acc_range in (2, 4, 8, 16):
        for gyro_range in gyro_ranges(chip):
            true_acc = np.array([0.9, -0.45, 0.2]) * acc_range
            true_gyro = np.array([-0.9, 0.3, 0.6]) * gyro_range
            clock, bus, _emu, driver = setup(chip, StaticMotion(true_acc, true_gyro),
                                            accel_range_g=acc_range,
                                            gyro_range_dps=gyro_range)
            assert driver.settings.accel_range_g == acc_range
            assert driver.settings.gyro_range_dps == gyro_range
            clock.now += 0.2
            got = driver.read_fifo()
            assert len(got) >= 15
            acc_scale = got.acc_g[-1] / true_acc
            gyro_scale = got.gyro_dps[-1] / true_gyro
            assert np.all(np.abs(acc_scale - 1) < 1e-3), (acc_range, acc_scale)
            assert np.all(np.abs(gyro_scale - 1) < 1e-3), (gyro_range, gyro_scale)
            # the counts on the wire are the datasheet sensitivity times the value
            a_lsb, g_lsb = lsb_per_unit(chip, acc_range, gyro_range)
            if chip in MPU:
                raw = struct.unpack(">7h", bytes(bus.read_i2c_block_data(0x68, 0x3B, 14)))
                acc_counts, gyro_counts = raw[0:3], raw[4:7]
            else:
                raw = struct.unpack("<6h", bytes(bus.read_i2c_block_data(0x6A, 0x22, 12)))
                gyro_counts, acc_counts = raw[0:3], raw[3:6]
            assert list(acc_counts) == [round(v * a_lsb) for v in true_acc]
            assert list(gyro_counts) == [round(v * g_lsb) for v in true_gyro]


@pytest.mark.parametrize("chip", CHIPS)
def test_saturated_samples_are_flagged_and_clipped(chip: str) -> None:
    clock, _bus, _emu, driver = setup(chip, StaticMotion((3.5, 0, 1), (0, 0, 10)),
                                      accel_range_g=2)
    clock.now += 0.1
    got = driver.read_fifo()
    assert len(got) > 0 and got.saturated.all()
    assert got.acc_g[0, 0] == pytest.approx(32767 * driver.settings.acc_lsb_g)
    assert got.acc_g[0, 2] == pytest.approx(1.0, abs=1e-3)


def _fifo_bytes(bus: EmulatedBus, address: int, reg: int, n: int) -> bytes:
    w, r = i2c_msg.write(address, [reg]), i2c_msg.read(address, n)
    bus.i2c_rdwr(w, r)
    return bytes(r)


@pytest.mark.parametrize("chip", MPU)
def test_mpu_fifo_byte_order(chip: str) -> None:
    acc, gyro = (0.25, -0.5, 1.0), (12.0, -3.0, 7.5)
    clock, bus, _emu, driver = setup(chip, StaticMotion(acc, gyro))
    clock.now += 0.05                                 # 5 samples at 100 Hz
    count = struct.unpack(">H", bytes(bus.read_i2c_block_data(0x68, 0x72, 2)))[0]
    assert count == 5 * 12
    data = _fifo_bytes(bus, 0x68, 0x74, count)
    # RM §4.7: ACCEL_XOUT_H..ACCEL_ZOUT_L then GYRO_XOUT_H..GYRO_ZOUT_L, high byte first
    frame = struct.pack(">6h", *(round(a * 8192) for a in acc), *(round(g * 65.5) for g in gyro))
    assert data == frame * 5
    parsed = driver.parse_fifo(data)
    assert np.allclose(parsed.acc_g, [acc] * 5, atol=1e-4)
    assert np.allclose(parsed.gyro_dps, [gyro] * 5, atol=0.01)


def test_lsm6ds3_fifo_byte_order_and_pattern() -> None:
    acc, gyro = (0.25, -0.5, 1.0), (12.0, -3.0, 7.5)
    clock, bus, _emu, driver = setup("lsm6ds3", StaticMotion(acc, gyro))
    clock.now += 4 / 104 + 1e-4
    status = bytes(bus.read_i2c_block_data(0x6A, 0x3A, 4))
    words = status[0] | (status[1] & 0x0F) << 8
    assert words == 4 * 6 and (status[2] | status[3] << 8) == 0     # pattern starts at GX
    data = _fifo_bytes(bus, 0x6A, 0x3E, words * 2)
    # DocID026899 §8.4: gyro data set first, then accel; each word L then H
    sample = struct.pack("<6h", *(round(g * 1000 / 17.5) for g in gyro),
                         *(round(a * 1000 / 0.122) for a in acc))
    assert data == sample * 4
    parsed = driver.parse_fifo(data)
    assert np.allclose(parsed.acc_g, [acc] * 4, atol=2e-4)
    assert np.allclose(parsed.gyro_dps, [gyro] * 4, atol=0.02)


@pytest.mark.parametrize("chip", ["lsm6dso", "lsm6dsox", "ism330dhcx"])
def test_tagged_fifo_byte_order(chip: str) -> None:
    acc, gyro = (0.25, -0.5, 1.0), (12.0, -3.0, 7.5)
    clock, bus, _emu, driver = setup(chip, StaticMotion(acc, gyro))
    clock.now += 3 / 104 + 1e-4
    status = bytes(bus.read_i2c_block_data(0x6A, 0x3A, 2))
    words = status[0] | (status[1] & 0x03) << 8
    assert words == 6
    data = _fifo_bytes(bus, 0x6A, 0x78, words * 7)
    gyro_xyz = struct.pack("<3h", *(round(g * 1000 / 17.5) for g in gyro))
    acc_xyz = struct.pack("<3h", *(round(a * 1000 / 0.122) for a in acc))
    counts = []
    for i in range(words):
        tag = data[7 * i]
        sensor, cnt = tag >> 3, (tag >> 1) & 3
        counts.append(cnt)
        # DS12140 Table 116: 0x01 gyroscope NC, 0x02 accelerometer NC
        assert sensor == (0x01 if i % 2 == 0 else 0x02)
        assert data[7 * i + 1:7 * i + 7] == (gyro_xyz if i % 2 == 0 else acc_xyz)
    assert counts[0::2] == counts[1::2]                       # one time slot per pair
    assert len(set(counts[0::2])) == 3                        # TAG_CNT advances per slot
    parsed = driver.parse_fifo(data)
    assert len(parsed) == 3
    assert np.allclose(parsed.acc_g, [acc] * 3, atol=2e-4)


def test_tagged_parser_pairs_by_slot_and_skips_other_tags() -> None:
    _clock, _bus, _emu, driver = setup("lsm6dsox")

    def word(tag: int, cnt: int, xyz: tuple[int, int, int]) -> bytes:
        return bytes([(tag << 3) | (cnt << 1)]) + struct.pack("<3h", *xyz)

    data = (word(0x02, 1, (100, 200, 300)) + word(0x01, 1, (1, 2, 3))      # accel first
            + word(0x03, 1, (25, 0, 0))                                    # temperature
            + word(0x01, 2, (4, 5, 6)) + word(0x04, 2, (7, 7, 7))          # timestamp
            + word(0x02, 2, (400, 500, 600))
            + word(0x01, 3, (9, 9, 9)))                                    # incomplete slot
    parsed = driver.parse_fifo(data)
    lsb = driver.settings
    assert np.allclose(parsed.acc_g / lsb.acc_lsb_g, [[100, 200, 300], [400, 500, 600]])
    assert np.allclose(parsed.gyro_dps / lsb.gyro_lsb_dps, [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("chip", CHIPS)
def test_accelerometer_only(chip: str) -> None:
    clock, _bus, _emu, driver = setup(chip, StaticMotion((0, 0.5, 0.8), (5, 5, 5)),
                                      use_gyro=False)
    clock.now += 0.2
    got = driver.read_fifo()
    assert got.gyro_dps is None and len(got) >= 19
    assert np.allclose(got.acc_g, [0, 0.5, 0.8], atol=2e-4)


def test_rate_and_filter_registers() -> None:
    _c, bus, _e, _d = setup("mpu6050", rate_hz=100, dlpf_hz=20)
    assert bus.read_byte_data(0x68, 0x19) == 9           # 1 kHz / (1 + 9) = 100 Hz
    assert bus.read_byte_data(0x68, 0x1A) & 0x07 == 4    # DLPF_CFG 4: 21 Hz accel
    assert bus.read_byte_data(0x68, 0x6B) & 0x40 == 0    # woken up
    _c, bus, _e, driver = setup("lsm6dso", rate_hz=100, accel_range_g=8)
    ctrl1 = bus.read_byte_data(0x6A, 0x10)
    assert ctrl1 >> 4 == 0b0100 and (ctrl1 >> 2) & 3 == 0b11   # 104 Hz, ±8 g
    assert driver.settings.rate_hz == 104
    assert bus.read_byte_data(0x6A, 0x0A) & 0x07 == 0b110       # continuous FIFO
    _c, _b, _e, driver = setup("mpu6500", gyro_range_dps=125)
    assert driver.settings.gyro_range_dps == 250          # no ±125 on InvenSense: next up


@pytest.mark.parametrize("chip", CHIPS)
def test_fifo_overflow_sets_the_datasheet_flag(chip: str) -> None:
    clock, bus, _emu, driver = setup(chip)
    clock.now += 2 * driver.fifo_capacity_samples / driver.settings.rate_hz
    if chip in MPU:
        assert bus.read_byte_data(0x68, 0x3A) & 0x10          # FIFO_OFLOW_INT
        count = struct.unpack(">H", bytes(bus.read_i2c_block_data(0x68, 0x72, 2)))[0]
        assert count == driver.fifo_capacity_bytes
        if chip == "mpu6050":
            assert count % 12 != 0                            # frames no longer aligned
    elif chip == "lsm6ds3":
        assert bus.read_byte_data(0x6A, 0x3B) & 0x40          # FIFO_OVER_RUN
    else:
        assert bus.read_byte_data(0x6A, 0x3B) & 0x48          # FIFO_OVR_IA / LATCHED
    clock.now += 0.01
    assert driver.read_fifo().overflow or chip in MPU         # MPU flag was read above
    driver.reset_fifo()
    clock.now += 0.1
    got = driver.read_fifo()
    assert not got.overflow and len(got) >= 9
    assert np.allclose(got.acc_g, [0, 0, 1], atol=2e-4)


@pytest.mark.parametrize("chip", ["mpu6050", "lsm6ds3"])
def test_soft_reset_restores_datasheet_reset_values(chip: str) -> None:
    _clock, bus, _emu, _driver = setup(chip)
    if chip == "mpu6050":
        bus.write_byte_data(0x68, 0x6B, 0x80)
        assert bus.read_byte_data(0x68, 0x6B) == 0x40         # asleep after reset
        assert bus.read_byte_data(0x68, 0x1C) == 0x00
    else:
        bus.write_byte_data(0x6A, 0x12, 0x01)
        assert bus.read_byte_data(0x6A, 0x12) == 0x04         # IF_INC set after reset
        assert bus.read_byte_data(0x6A, 0x10) == 0x00         # power-down


def test_lsm6ds3_realigns_with_fifo_pattern() -> None:
    """A read that stopped mid-sample leaves the FIFO mid-pattern; FIFO_PATTERN tells the
    driver how many words to skip to the next GX."""
    acc, gyro = (0.1, 0.2, 0.9), (1.0, 2.0, 3.0)
    clock, bus, _emu, driver = setup("lsm6ds3", StaticMotion(acc, gyro))
    clock.now += 0.1
    _fifo_bytes(bus, 0x6A, 0x3E, 4)                  # pop GX, GY of the first sample
    status = bytes(bus.read_i2c_block_data(0x6A, 0x3A, 4))
    assert status[2] | status[3] << 8 == 2           # next word is GZ (pattern index 2)
    got = driver.read_fifo()
    assert len(got) >= 9
    assert np.allclose(got.acc_g, [acc] * len(got), atol=2e-4)
    assert np.allclose(got.gyro_dps, [gyro] * len(got), atol=0.02)


def test_mpu6500_fifo_mode_stops_when_full() -> None:
    """CONFIG.FIFO_MODE = 1: a full FIFO keeps its whole frames and raises the flag."""
    clock, bus, _emu, driver = setup("mpu6500")
    bus.write_byte_data(0x68, 0x1A, bus.read_byte_data(0x68, 0x1A) | 0x40)
    driver.reset_fifo()
    clock.now += 2.0
    assert bus.read_byte_data(0x68, 0x3A) & 0x10
    count = struct.unpack(">H", bytes(bus.read_i2c_block_data(0x68, 0x72, 2)))[0]
    assert count == (512 // 12) * 12                 # whole frames only
    data = _fifo_bytes(bus, 0x68, 0x74, count)
    assert np.allclose(driver.parse_fifo(data).acc_g, [0, 0, 1], atol=2e-4)


@pytest.mark.parametrize("chip,dlpf,expected", [("mpu6050", 5, 5), ("mpu6050", 200, 184),
                                                 ("mpu9250", 40, 44.8),
                                                 ("lsm6dso", 10, 10.4), ("lsm6ds3", 90, 100)])
def test_low_pass_choice_is_the_nearest_supported(chip: str, dlpf: float,
                                                   expected: float) -> None:
    _c, _b, _e, driver = setup(chip, dlpf_hz=dlpf)
    assert driver.settings.dlpf_hz == pytest.approx(expected)


def test_fields_work_as_adafruit_style_descriptors() -> None:
    from spinesense.firmware.invensense import AFS_SEL, FIFO_OFLOW_EN, FS_SEL
    from spinesense.firmware.registers import RegisterBlock

    class Regs(RegisterBlock):
        accel_fs = AFS_SEL
        gyro_fs = FS_SEL
        overflow_irq = FIFO_OFLOW_EN

    _c, bus, _e, _d = setup("mpu6050")
    regs = Regs(bus, 0x68)
    regs.accel_fs = 3
    regs.gyro_fs = 1
    assert bus.read_byte_data(0x68, 0x1C) == 0b11 << 3
    assert bus.read_byte_data(0x68, 0x1B) == 0b01 << 3
    assert (regs.accel_fs, regs.gyro_fs, regs.overflow_irq) == (3, 1, 1)
    assert AFS_SEL.meaning(regs.accel_fs) == 16
    with pytest.raises(ValueError, match="cannot hold 4"):
        regs.accel_fs = 4
