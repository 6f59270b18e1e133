"""`spinesense sensor probe/info/read`: identification and actionable failure messages."""

from __future__ import annotations

import pytest

from spinesense.cli import main
from spinesense.firmware import probe
from spinesense.firmware.emulated_chips import make_chip
from spinesense.firmware.emulator import EmulatedBus


@pytest.mark.parametrize("chip,shown", [
    ("lsm6dsox", "LSM6DSO / LSM6DSOX WHO_AM_I[0x0F] = 0x6C"),
    ("mpu6050", "MPU-6050           WHO_AM_I[0x75] = 0x68"),
    ("mpu6500", "MPU-6500"), ("mpu9250", "MPU-9250"), ("lsm6ds3", "LSM6DS3"),
    ("ism330dhcx", "ISM330DHCX"),
])
def test_probe_identifies_emulated_chips(chip: str, shown: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensor", "probe", "--emulate", chip]) == 0
    out = capsys.readouterr().out
    assert shown in out and chip in out


def test_probe_at_the_second_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensor", "probe", "--emulate", "mpu9250@0x69"]) == 0
    assert "0x69  MPU-9250" in capsys.readouterr().out


def test_probe_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensor", "probe", "--emulate", "none"]) == 1
    err = capsys.readouterr().err
    assert "no IMU answered on I2C bus 1 at 0x68, 0x69, 0x6A, 0x6B" in err
    assert "SDA → pin 3" in err and "i2cdetect -y 1" in err
    assert err.count("\n") == 1                          # one line, no traceback


def test_probe_when_i2c_is_not_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    # a real smbus2.SMBus on a bus number no machine has
    assert main(["sensor", "probe", "--bus", "250"]) == 1
    err = capsys.readouterr().err
    assert "/dev/i2c-250 does not exist" in err
    assert "sudo raspi-config nonint do_i2c 0" in err and "dtparam=i2c_arm=on" in err


def test_probe_names_an_unsupported_relative() -> None:
    bus = EmulatedBus()
    chip = bus.attach(make_chip("mpu6500"))
    chip.regs[0x75] = 0x19                               # an MPU-6886 answers 0x19
    found = probe.scan(bus)
    assert len(found) == 1 and found[0].name == "MPU-6886" and not found[0].supported
    assert "not supported" in found[0].line()


def test_bad_emulate_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sensor", "probe", "--emulate", "bmi160"])
    assert info.value.code == 2
    assert "emulate one of mpu6050" in capsys.readouterr().err


def test_sensor_info_and_read_on_an_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensor", "info", "--emulate", "lsm6ds3"]) == 0
    out = capsys.readouterr().out
    assert "rate_hz: 104" in out and "temperature_c: 25.0" in out and "|a| = 1.0000" in out
    assert main(["sensor", "read", "--emulate", "mpu6050", "--duration", "1.2s",
                 "--every", "0.5s"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("#")]
    assert len(lines) >= 1
    assert float(lines[0].split()[3]) == pytest.approx(1.0, abs=1e-3)   # az
