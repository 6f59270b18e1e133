"""SensorReader through open_sensor on emulated chips: timing, faults, gaps, events."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spinesense.config import SensorConfig
from spinesense.firmware.chips import DRIVERS
from spinesense.firmware.emulated_chips import make_chip
from spinesense.firmware.emulator import EmulatedBus
from spinesense.firmware.faults import FaultPlan, FaultSpecError
from spinesense.firmware.motion import StaticMotion
from spinesense.firmware.reader import SensorError, open_sensor
from spinesense.samples import SampleChunk


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LoggingMotion:
    """Remembers every time the chip sampled, and encodes that time in the signal."""

    def __init__(self) -> None:
        self.times: list[np.ndarray] = []

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.times.append(np.array(t))
        acc = np.column_stack([0.3 * np.sin(t), 0.3 * np.cos(t), np.ones_like(t)])
        return acc, np.zeros((len(t), 3))


def run(reader, clock: Clock, seconds: float, step: float = 0.25):
    chunks, events = [], []
    for _ in range(round(seconds / step)):
        clock.now += step
        chunk, evs = reader.poll()
        events += evs
        if chunk is not None:
            chunks.append(chunk)
    return (SampleChunk.concat(chunks) if chunks else None), events


@pytest.mark.parametrize("chip,odr_error", [("mpu6050", 0.007), ("lsm6dsox", -0.012),
                                            ("lsm6ds3", 0.0)])
def test_timestamps_follow_the_chips_actual_rate(chip: str, odr_error: float) -> None:
    clock, motion = Clock(), LoggingMotion()
    reader = open_sensor(SensorConfig(), emulate=chip, motion=motion, clock=clock,
                         odr_error=odr_error)
    got, events = run(reader, clock, 180.0)
    assert events == []
    true_t = np.concatenate(motion.times) + reader.motion_epoch
    assert len(got) == len(true_t)                    # nothing lost, nothing invented
    assert np.all(np.diff(got.t) > 0)
    settled = true_t > true_t[0] + 60
    period = 1 / (reader.info.rate_hz * (1 + odr_error))
    err = got.t[settled] - true_t[settled]
    assert np.max(np.abs(err)) < 0.5 * period, np.max(np.abs(err))
    assert reader.stats.period_s == pytest.approx(period, rel=5e-4)


def test_timestamps_stay_increasing_with_irregular_polls() -> None:
    rng = np.random.default_rng(3)
    clock, motion = Clock(), LoggingMotion()
    reader = open_sensor(SensorConfig(), emulate="mpu9250", motion=motion, clock=clock)
    chunks = []
    for _ in range(400):
        clock.now += float(rng.uniform(0.01, 0.4))   # FIFO holds 0.42 s
        chunk, events = reader.poll()
        assert events == []
        if chunk is not None:
            chunks.append(chunk)
    got = SampleChunk.concat(chunks)
    true_t = np.concatenate(motion.times) + reader.motion_epoch
    assert np.all(np.diff(got.t) > 0)
    assert np.max(np.abs(got.t - true_t)[len(got) // 2:]) < 0.01
    # the samples carry the motion of their own time
    assert np.allclose(got.acc[:, 0], 0.3 * np.sin(true_t - reader.motion_epoch), atol=3e-4)


@pytest.mark.parametrize("chip", list(DRIVERS))
def test_eio_bursts_and_a_3s_disconnect_are_survived(chip: str) -> None:
    clock = Clock()
    plan = "eio@5x3,eio@10x40,timeout@14x2,disconnect@20+3,nack@30+0.4,eio@40x2"
    reader = open_sensor(SensorConfig(), emulate=chip, clock=clock, faults=plan)
    got, events = run(reader, clock, 60.0)          # any exception fails the test
    kinds = [e["type"] for e in events]
    assert kinds.count("sensor_lost") == kinds.count("sensor_back") >= 2
    lost = [e for e in events if e["type"] == "sensor_lost"]
    assert any("EREMOTEIO" in e["error"] for e in lost)
    assert any("EIO" in e["error"] for e in lost)
    gaps = [e for e in events if e["type"] == "gap"]
    origin = reader.emulator.t_origin
    # the disconnect (20..23 s) lies inside one recorded gap
    assert any(g["t"] <= origin + 20 and g["end"] >= origin + 23 for g in gaps)
    assert reader.stats.gaps == len(gaps) and reader.stats.gap_s > 3
    assert reader.stats.i2c_errors >= 40 and reader.stats.reinits >= 2
    # short bursts (3 EIO, 2 ETIMEDOUT) are absorbed by retries: no gap around them
    assert not any(g["t"] <= origin + 5 <= g["end"] for g in gaps)
    assert np.all(np.diff(got.t) > 0)
    expected = 60 * reader.info.rate_hz
    assert expected - reader.stats.gap_s * reader.info.rate_hz - 60 < len(got) <= expected
    # after the chip came back (reset on power-up) it is configured again and reads right
    tail = got.t > origin + 45
    assert tail.sum() > 10 * reader.info.rate_hz
    assert np.allclose(got.acc[tail], [0, 0, 1], atol=2e-4)
    for g in gaps:
        before = got.t[got.t <= g["t"]]
        after = got.t[got.t >= g["end"]]
        assert len(before) and before[-1] == pytest.approx(g["t"])
        assert len(after) and after[0] == pytest.approx(g["end"])


@pytest.mark.parametrize("chip", ["mpu6050", "mpu6500", "lsm6ds3", "ism330dhcx"])
def test_overflow_is_detected_reset_and_recorded_as_a_gap(chip: str) -> None:
    clock = Clock()
    reader = open_sensor(SensorConfig(), emulate=chip, clock=clock)
    first, events = run(reader, clock, 2.0)
    assert events == []
    stall = reader.info.fifo_capacity_s + 1.0        # the host stalls past the FIFO's depth
    clock.now += stall
    chunk, events = reader.poll()
    assert chunk is None and [e["type"] for e in events] == ["fifo_overflow"]
    later, events = run(reader, clock, 2.0)
    gap = [e for e in events if e["type"] == "gap"]
    assert len(gap) == 1 and gap[0]["reason"] == "fifo_overflow"
    assert gap[0]["t"] == pytest.approx(first.t[-1])
    assert gap[0]["end"] == pytest.approx(later.t[0])
    assert gap[0]["duration_s"] >= stall
    assert reader.stats.overflows == 1
    assert np.allclose(later.acc, [0, 0, 1], atol=2e-4)   # realigned after the reset


@pytest.mark.parametrize("chip", ["mpu6050", "lsm6dso"])
def test_injected_overflow_fault(chip: str) -> None:
    clock = Clock()
    reader = open_sensor(SensorConfig(), emulate=chip, clock=clock, faults="overflow@3")
    got, events = run(reader, clock, 6.0)
    assert [e["type"] for e in events] == ["fifo_overflow", "gap"]
    assert np.allclose(got.acc, [0, 0, 1], atol=2e-4)     # no misaligned garbage


def test_poll_on_a_closed_bus_reports_instead_of_raising() -> None:
    clock = Clock()
    reader = open_sensor(SensorConfig(), emulate="lsm6ds3", clock=clock)
    run(reader, clock, 1.0)
    reader.emulator.close()
    _got, events = run(reader, clock, 2.0)
    assert [e["type"] for e in events] == ["sensor_lost"]
    assert "EBADF" in events[0]["error"]


def test_stats_count_what_the_bus_sees() -> None:
    clock = Clock()
    reader = open_sensor(SensorConfig(), emulate="mpu6050", clock=clock)
    run(reader, clock, 10.0)
    assert reader.stats.transactions == reader.emulator.stats.transactions
    assert reader.stats.bytes == reader.emulator.stats.wire_bytes
    assert reader.stats.samples == pytest.approx(1000 * 1.002, abs=2)


def test_wrong_chip_at_the_address_is_named() -> None:
    bus = EmulatedBus()
    bus.attach(make_chip("mpu6050"))
    with pytest.raises(SensorError, match=r"expected MPU-6500 but found: 0x68  MPU-6050"):
        open_sensor(SensorConfig(chip="mpu6500", address=0x68), bus=bus)


def test_auto_detection_picks_the_chip_that_answers() -> None:
    bus = EmulatedBus()
    bus.attach(make_chip("ism330dhcx"), 0x6B)
    reader = open_sensor(SensorConfig(), bus=bus, sleep=lambda s: None)
    assert (reader.info.chip, reader.info.address) == ("ism330dhcx", 0x6B)


def test_nothing_on_the_bus_is_an_actionable_error() -> None:
    with pytest.raises(SensorError, match=r"no IMU answered on I2C bus 1 .*i2cdetect -y 1"):
        open_sensor(SensorConfig(), bus=EmulatedBus())


def test_fault_plans_parse_and_reject_bad_text() -> None:
    plan = FaultPlan.parse("eio@5x20, disconnect@10.5+3, overflow@20:0x69")
    assert [(f.kind, f.at, f.count, f.duration, f.address) for f in plan.faults] == [
        ("eio", 5.0, 20, 0.0, None), ("disconnect", 10.5, 0, 3.0, None),
        ("overflow", 20.0, 0, 0.0, 0x69)]
    for bad in ("eio@5", "melt@3", "disconnect@4", "eio@x"):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse(bad)


def test_nack_gives_eremoteio_like_the_pi() -> None:
    clock = Clock()
    bus = EmulatedBus(clock=clock, faults=FaultPlan.parse("nack@1+1"))
    bus.attach(make_chip("mpu6050", StaticMotion()))
    clock.now += 1.5
    with pytest.raises(OSError) as info:
        bus.read_byte_data(0x68, 0x75)
    assert info.value.errno == errno.EREMOTEIO
    clock.now += 1.0
    assert bus.read_byte_data(0x68, 0x75) == 0x68
    with pytest.raises(OSError):
        bus.read_byte_data(0x69, 0x75)                # nobody home


@pytest.mark.parametrize("chip", ["mpu6050", "mpu6500", "lsm6ds3", "lsm6dsox"])
def test_a_silent_chip_reset_is_noticed_and_repaired(chip: str) -> None:
    """A brown-out resets the chip without any bus error; the reader must not go quiet."""
    clock = Clock()
    reader = open_sensor(SensorConfig(), emulate=chip, clock=clock, faults="brownout@10")
    got, events = run(reader, clock, 20.0)
    gaps = [e for e in events if e["type"] == "gap"]
    assert [g["reason"] for g in gaps] == ["chip_reset"]
    origin = reader.emulator.t_origin
    assert origin + 9.7 < gaps[0]["t"] <= origin + 10
    assert gaps[0]["end"] - gaps[0]["t"] < 2.0                 # found within ~1.5 s
    assert np.sum(got.t > origin + 12) > 7 * reader.info.rate_hz
    assert np.allclose(got.acc, [0, 0, 1], atol=2e-4)


def test_slow_reads_do_not_disturb_the_timing() -> None:
    """A read that took long (host descheduled) must not drag the timestamps around."""

    clock, motion = Clock(), LoggingMotion()
    reader = open_sensor(SensorConfig(), emulate="mpu6050", motion=motion, clock=clock)
    bus = reader.emulator
    original = bus.read_byte_data

    def slow_status(addr: int, reg: int) -> int:
        if reg == 0x3A and int(clock.now * 4) % 7 == 0:
            clock.now += 0.06      # 60 ms pass between the reader's clock read and the FIFO
        return original(addr, reg)

    bus.read_byte_data = slow_status
    got, events = run(reader, clock, 60.0)
    true_t = np.concatenate(motion.times) + reader.motion_epoch
    assert events == [] and np.all(np.diff(got.t) > 0)
    n = min(len(got), len(true_t))
    # without the slow-read guard this is about 11 ms
    assert np.max(np.abs(got.t[n // 2:n] - true_t[n // 2:n])) < 0.005


fault_st = st.tuples(st.sampled_from(["eio", "timeout", "nack", "disconnect", "overflow",
                                      "brownout"]),
                     st.floats(1.0, 40.0), st.integers(1, 60), st.floats(0.05, 4.0))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(chip=st.sampled_from(list(DRIVERS)), faults=st.lists(fault_st, max_size=6),
       step=st.sampled_from([0.1, 0.25, 0.3]))
def test_no_fault_plan_breaks_the_reader(chip: str, faults: list, step: float) -> None:
    """Any mix of faults: no exception, strictly increasing time, correct values after
    every recovery, and every hole in the data is a recorded gap (none is silent)."""
    plan = FaultPlan()
    for kind, at, count, duration in faults:
        plan.add(kind, at, count=count, duration=duration)
    clock = Clock()
    reader = open_sensor(SensorConfig(), emulate=chip, clock=clock, faults=plan)
    got, events = run(reader, clock, 60.0, step)
    kinds = [e["type"] for e in events]
    assert kinds.count("sensor_lost") == kinds.count("sensor_back")   # all over by t=44 s
    assert got is not None and np.all(np.diff(got.t) > 0)
    assert np.allclose(got.acc, [0, 0, 1], atol=2e-4)
    period = 1 / reader.info.rate_hz
    holes = {(round(a, 9), round(b, 9)) for a, b, d in zip(got.t[:-1], got.t[1:],
                                                          np.diff(got.t), strict=True)
             if d > 1.5 * period}
    gaps = {(round(e["t"], 9), round(e["end"], 9)) for e in events if e["type"] == "gap"}
    assert holes == gaps
    assert got.t[-1] > reader.emulator.t_origin + 59.0            # reading at the end
