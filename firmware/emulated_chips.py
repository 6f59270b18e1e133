"""The emulated chips: how each family's registers behave (reads, writes, FIFO, flags).

Decoding uses the drivers' own `Field` tables (one register map per chip, written as data);
the FIFO byte layouts and flag semantics follow the datasheet sections cited in
`invensense` and `st_lsm6`.
"""

from __future__ import annotations

import numpy as np

from spinesense.firmware import invensense as mpu
from spinesense.firmware import st_lsm6 as st
from spinesense.firmware.emulator import EmulatedChip
from spinesense.firmware.motion import MotionSource

# TAG_PARITY: makes the tag byte's bit count even
_PARITY = np.array([bin(i).count("1") & 1 for i in range(256)], np.uint8)


class EmulatedMpu(EmulatedChip):
    """MPU-6050/6500/9250: byte FIFO, frames in register order, big-endian."""

    default_address = mpu.ADDRESSES[0]
    fifo_unit = 1

    def __init__(self, model: mpu.MpuModel, motion: MotionSource | None = None, **kw: float):
        self.model = model
        self.chip = model.chip
        self.register_map = model.register_map
        self.fifo_capacity = model.fifo_bytes
        self._read_only = self.register_map.read_only()
        self.drdy_k = 0
        super().__init__(motion, **kw)

    def field(self, f: mpu.Field) -> int:
        return f.get(self.regs[f.reg.addr])

    def timeline_hz(self) -> float:
        if self.field(mpu.SLEEP):
            return 0.0
        dlpf = self.field(mpu.DLPF_CFG_6050)
        fchoice_b = self.field(mpu.FCHOICE_B) if self.model.is_6500 else 0
        internal = 8000.0 if dlpf in (0, 7) or fchoice_b else mpu.INTERNAL_RATE_HZ
        return internal / (1 + self.regs[mpu.SMPLRT_DIV.addr])

    def scales(self) -> tuple[float, float]:
        return (mpu.ACCEL_LSB_PER_G[self.field(mpu.AFS_SEL)],
                mpu.GYRO_LSB_PER_DPS[self.field(mpu.FS_SEL)])

    def fifo_active(self) -> bool:
        return bool(self.field(mpu.USER_FIFO_EN)) and self.regs[mpu.FIFO_EN.addr] & 0xF8 != 0

    def stop_when_full(self) -> bool:
        return self.model.is_6500 and bool(self.field(mpu.FIFO_MODE))

    def frame_bytes(self) -> int:
        en = self.regs[mpu.FIFO_EN.addr]
        return (6 * bool(en & 0x08) + 2 * bool(en & 0x80) + 2 * bool(en & 0x40)
                + 2 * bool(en & 0x20) + 2 * bool(en & 0x10))

    def temp_raw(self) -> int:
        return round((self.temperature_c - self.model.temp_offset_c) * self.model.temp_lsb_per_c)

    def encode_fifo(self, acc: np.ndarray, gyro: np.ndarray, ks: np.ndarray) -> bytes:
        """RM §4.7: enabled outputs in register order (ACCEL, TEMP, XG, YG, ZG), high byte
        first."""
        en = self.regs[mpu.FIFO_EN.addr]
        cols = []
        if en & 0x08:
            cols.append(acc)
        if en & 0x80:
            cols.append(np.full((len(acc), 1), self.temp_raw()))
        for bit, axis in ((0x40, 0), (0x20, 1), (0x10, 2)):
            if en & bit:
                cols.append(gyro[:, axis:axis + 1])
        return np.hstack(cols).astype(">i2").tobytes()

    def live(self, reg: int) -> int:
        if mpu.ACCEL_XOUT_H.addr <= reg < mpu.ACCEL_XOUT_H.addr + 14:
            i = reg - mpu.ACCEL_XOUT_H.addr
            words = np.concatenate((self.latest_acc, [self.temp_raw()], self.latest_gyro))
            return int(words.astype(">i2").tobytes()[i])
        if reg == mpu.INT_STATUS.addr:
            drdy = int(self.k > self.drdy_k)
            return mpu.FIFO_OFLOW_INT.put(drdy, int(self.overflowed))
        if reg in (mpu.FIFO_COUNTH.addr, mpu.FIFO_COUNTL.addr):
            count = len(self.fifo) & self.model.count_mask
            return count >> 8 if reg == mpu.FIFO_COUNTH.addr else count & 0xFF
        return self.regs[reg]

    def read_regs(self, reg: int, length: int) -> bytes:
        if reg == mpu.FIFO_R_W.addr:                      # RM §4.31: no auto-increment
            return self.pop(length)
        data = self.plain_read(reg, length)
        if reg <= mpu.INT_STATUS.addr < reg + length:     # RM §4.16: cleared by reading
            self.overflowed = False
            self.drdy_k = self.k
        return data

    def write_reg(self, reg: int, value: int) -> None:
        if reg in self._read_only:
            return
        if reg == mpu.PWR_MGMT_1.addr and mpu.DEVICE_RESET.get(value):
            self.power_on(self.now)
            return
        if reg == mpu.USER_CTRL.addr:
            if mpu.FIFO_RESET.get(value):
                self.clear_fifo()
            value &= ~0x07 & 0xFF                          # reset bits clear themselves
        if reg == mpu.FIFO_R_W.addr:
            return
        self.regs[reg] = value
        self.reconfigured()


class EmulatedLsm6(EmulatedChip):
    """LSM6DS3 (16-bit word FIFO with a pattern) and the tagged LSM6DSO family."""

    default_address = st.ADDRESSES[0]

    def __init__(self, model: st.StModel, motion: MotionSource | None = None, **kw: float):
        self.model = model
        self.chip = model.chip
        self.register_map = model.register_map
        self.fifo_unit = model.fifo_word_bytes
        self.fifo_capacity = model.fifo_words * model.fifo_word_bytes
        self._read_only = self.register_map.read_only()
        self.ovr_latched = False
        super().__init__(motion, **kw)

    def field(self, f: st.Field) -> int:
        return f.get(self.regs[f.reg.addr])

    def timeline_hz(self) -> float:
        xl = st.ODR_XL.meaning(self.field(st.ODR_XL)) or 0.0
        g = st.ODR_G.meaning(self.field(st.ODR_G)) or 0.0
        return max(xl, g)

    def scales(self) -> tuple[float, float]:
        arange = int(st.FS_XL.meaning(self.field(st.FS_XL)) or 2)
        grange = st.gyro_range_of(self.model, self.regs[st.CTRL2_G.addr])
        return 1000.0 / st.ACCEL_MG_PER_LSB[arange], 1000.0 / st.GYRO_MDPS_PER_LSB[grange]

    def fifo_mode(self) -> int:
        f = st.DSO_FIFO_MODE if self.model.tagged else st.DS3_FIFO_MODE
        return self.field(f)

    def batched(self) -> tuple[bool, bool]:
        """(gyro, accel) written to the FIFO."""
        g_on, xl_on = self.field(st.ODR_G) != 0, self.field(st.ODR_XL) != 0
        if self.model.tagged:
            return g_on and self.field(st.BDR_GY) != 0, xl_on and self.field(st.BDR_XL) != 0
        return (g_on and self.field(st.DEC_FIFO_GYRO) != 0,
                xl_on and self.field(st.DEC_FIFO_XL) != 0)

    def fifo_active(self) -> bool:
        if self.fifo_mode() == st.FIFO_BYPASS or not any(self.batched()):
            return False
        return self.model.tagged or self.field(st.ODR_FIFO) != 0

    def stop_when_full(self) -> bool:
        return self.fifo_mode() == st.FIFO_STOP_WHEN_FULL

    def frame_bytes(self) -> int:
        per = 7 if self.model.tagged else 6
        return per * sum(self.batched())

    def encode_fifo(self, acc: np.ndarray, gyro: np.ndarray, ks: np.ndarray) -> bytes:
        g_on, a_on = self.batched()
        sets = [s for s, on in ((gyro, g_on), (acc, a_on)) if on]   # gyro first
        if not self.model.tagged:
            return np.hstack(sets).astype("<i2").tobytes()
        tags = [t for t, on in ((st.TAG_GYRO, g_on), (st.TAG_ACCEL, a_on)) if on]
        n = len(ks)
        out = np.empty((n, len(sets), 7), np.uint8)
        cnt = (ks % 4).astype(np.uint8)
        for j, (data, tag) in enumerate(zip(sets, tags, strict=True)):
            byte = ((tag << 3) | (cnt << 1)).astype(np.uint8)
            out[:, j, 0] = byte | _PARITY[byte]
            out[:, j, 1:] = np.ascontiguousarray(data.astype("<i2")).view(np.uint8)
        return out.tobytes()

    def temp_raw(self) -> int:
        return round((self.temperature_c - 25.0) * self.model.temp_lsb_per_c)

    def live(self, reg: int) -> int:
        words = len(self.fifo) // self.fifo_unit
        if reg == st.FIFO_STATUS1.addr:
            return min(words, 0xFFF) & 0xFF
        if reg == st.FIFO_STATUS2.addr:
            if self.model.tagged:
                full = words >= self.model.fifo_words
                return ((st.DSO_OVR_IA if self.overflowed and full else 0)
                        | (st.DSO_FULL_IA if full else 0)
                        | (st.DSO_OVR_LATCHED if self.ovr_latched else 0)
                        | ((words >> 8) & 0x03))
            return ((st.DS3_OVER_RUN if self.overflowed else 0)
                    | (st.DS3_FULL if words >= self.model.fifo_words else 0)
                    | (st.DS3_EMPTY if words == 0 else 0) | ((min(words, 0xFFF) >> 8) & 0x0F))
        if not self.model.tagged and reg in (st.DS3_FIFO_STATUS3.addr, st.DS3_FIFO_STATUS4.addr):
            per = 3 * max(1, sum(self.batched()))
            pattern = (self.fifo_written - words) % per
            return pattern & 0xFF if reg == st.DS3_FIFO_STATUS3.addr else pattern >> 8
        if st.OUT_TEMP_L.addr <= reg < st.OUTX_L_XL.addr + 6:
            values = np.concatenate(([self.temp_raw()], self.latest_gyro, self.latest_acc))
            return int(values.astype("<i2").tobytes()[reg - st.OUT_TEMP_L.addr])
        if reg == st.STATUS_REG.addr:
            return 0x07 if self.k > 0 else 0
        return self.regs[reg]

    def auto_increment(self) -> bool:
        return bool(self.field(st.IF_INC))

    def _fifo_out(self, reg: int) -> bool:
        if self.model.tagged:
            return st.DSO_FIFO_DATA_OUT_TAG.addr <= reg <= st.DSO_FIFO_DATA_OUT_TAG.addr + 6
        return reg in (st.DS3_FIFO_DATA_OUT_L.addr, st.DS3_FIFO_DATA_OUT_H.addr)

    def read_regs(self, reg: int, length: int) -> bytes:
        if self._fifo_out(reg):             # bursts roll back within the FIFO output regs
            return self.pop(length)
        if not self.auto_increment():
            return bytes([self.live(reg)] * length)
        data = self.plain_read(reg, length)
        if reg <= st.FIFO_STATUS2.addr < reg + length:
            self.ovr_latched = False        # DS12140 §9.39: FIFO_OVR_LATCHED reset on read
        return data

    def push(self, data: bytes, samples: int) -> None:
        super().push(data, samples)
        self.ovr_latched = self.ovr_latched or self.overflowed

    def force_overflow(self) -> None:
        super().force_overflow()
        self.ovr_latched = True

    def write_reg(self, reg: int, value: int) -> None:
        if reg in self._read_only:
            return
        if reg == st.CTRL3_C.addr and st.SW_RESET.get(value):
            self.power_on(self.now)
            return
        if reg == st.CTRL3_C.addr:
            value = st.BOOT.put(value, 0)    # reboot of the trimming: nothing to emulate
        mode_reg = st.DSO_FIFO_CTRL4 if self.model.tagged else st.DS3_FIFO_CTRL5
        self.regs[reg] = value
        if reg == mode_reg.addr and self.fifo_mode() == st.FIFO_BYPASS:
            self.clear_fifo()               # bypass mode empties the FIFO
            self.ovr_latched = False
        self.reconfigured()


CHIPS = ("mpu6050", "mpu6500", "mpu9250", "lsm6ds3", "lsm6dso", "lsm6dsox", "ism330dhcx")


def make_chip(name: str, motion: MotionSource | None = None, **kw: float) -> EmulatedChip:
    """An emulated chip by its SensorConfig.chip name."""
    if name in mpu.MODELS:
        return EmulatedMpu(mpu.MODELS[name], motion, **kw)
    if name in st.MODELS:
        return EmulatedLsm6(st.MODELS[name], motion, **kw)
    raise ValueError(f"no emulator for chip {name!r}; choose one of {', '.join(CHIPS)}")
