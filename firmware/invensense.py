"""InvenSense MPU-6050 / MPU-6500 / MPU-9250 over I2C, read through the FIFO.

Register map as data, cited from the register-map documents:
RM-MPU-6000A-00 rev 4.2 (MPU-6050), RM-MPU-6500A-00 rev 2.1 (MPU-6500) and
RM-MPU-9250A-00 rev 1.4 (MPU-9250, same accel/gyro die as the MPU-6500; its AK8963
magnetometer behind the auxiliary bus is not used here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinesense.firmware.imu import MAX_READ_BYTES, FifoRead, ImuDriver, Settings
from spinesense.firmware.registers import Field, Register, RegisterMap, codes

# -- registers (section numbers of RM-MPU-6000A-00 / RM-MPU-6500A-00) ----------------------
SMPLRT_DIV = Register("SMPLRT_DIV", 0x19, doc="§4.2: rate = internal rate / (1 + div)")
CONFIG = Register("CONFIG", 0x1A, doc="§4.3: FIFO_MODE (6500), EXT_SYNC_SET, DLPF_CFG")
GYRO_CONFIG = Register("GYRO_CONFIG", 0x1B, doc="§4.4: FS_SEL[4:3], FCHOICE_B[1:0] (6500)")
ACCEL_CONFIG = Register("ACCEL_CONFIG", 0x1C, doc="§4.5: AFS_SEL[4:3]")
ACCEL_CONFIG2 = Register("ACCEL_CONFIG2", 0x1D, doc="6500 §4.7: A_DLPF_CFG[2:0]")
FIFO_EN = Register("FIFO_EN", 0x23, doc="§4.7: which outputs go into the FIFO")
INT_ENABLE = Register("INT_ENABLE", 0x38, doc="§4.15: FIFO_OFLOW_EN bit 4")
INT_STATUS = Register("INT_STATUS", 0x3A, access="r",
                      doc="§4.16: FIFO_OFLOW_INT bit 4; cleared when read")
ACCEL_XOUT_H = Register("ACCEL_XOUT_H", 0x3B, access="r",
                        doc="§4.17: accel X,Y,Z, then TEMP (0x41), GYRO (0x43), big-endian")
TEMP_OUT_H = Register("TEMP_OUT_H", 0x41, access="r", doc="§4.18")
GYRO_XOUT_H = Register("GYRO_XOUT_H", 0x43, access="r", doc="§4.19")
USER_CTRL = Register("USER_CTRL", 0x6A, doc="§4.26: FIFO_EN bit 6, FIFO_RESET bit 2")
PWR_MGMT_1 = Register("PWR_MGMT_1", 0x6B, reset=0x40,
                      doc="§4.28: DEVICE_RESET bit 7, SLEEP bit 6, CLKSEL[2:0]; "
                          "6050 powers up asleep (0x40), 6500/9250 awake (0x01)")
PWR_MGMT_2 = Register("PWR_MGMT_2", 0x6C, doc="§4.29: STBY_XG/YG/ZG bits 2..0")
FIFO_COUNTH = Register("FIFO_COUNTH", 0x72, access="r",
                       doc="§4.30: byte count, high byte first (6500: 13 bits)")
FIFO_COUNTL = Register("FIFO_COUNTL", 0x73, access="r")
FIFO_R_W = Register("FIFO_R_W", 0x74, doc="§4.31: FIFO data; reads do not auto-increment")
WHO_AM_I = Register("WHO_AM_I", 0x75, access="r", doc="§4.32")

REGISTERS = (SMPLRT_DIV, CONFIG, GYRO_CONFIG, ACCEL_CONFIG, ACCEL_CONFIG2, FIFO_EN,
             INT_ENABLE, INT_STATUS, ACCEL_XOUT_H, TEMP_OUT_H, GYRO_XOUT_H, USER_CTRL,
             PWR_MGMT_1, PWR_MGMT_2, FIFO_COUNTH, FIFO_COUNTL, FIFO_R_W, WHO_AM_I)

# -- fields ---------------------------------------------------------------------------------
FIFO_MODE = Field(CONFIG, 6, doc="6500: 1 = stop writing when full, 0 = overwrite oldest")
# DLPF_CFG: accel/gyro bandwidth (Hz) for codes 0..6 (6050 §4.3 table; 6500 gyro table)
DLPF_CFG_6050 = Field(CONFIG, 0, 3, codes((1, 184), (2, 94), (3, 44), (4, 21), (5, 10),
                                          (6, 5)))
DLPF_CFG_6500 = Field(CONFIG, 0, 3, codes((1, 184), (2, 92), (3, 41), (4, 20), (5, 10),
                                          (6, 5)))
A_DLPF_CFG = Field(ACCEL_CONFIG2, 0, 3, codes((1, 218.1), (2, 99), (3, 44.8), (4, 21.2),
                                              (5, 10.2), (6, 5.05)))
FS_SEL = Field(GYRO_CONFIG, 3, 2, codes((0, 250), (1, 500), (2, 1000), (3, 2000)))
FCHOICE_B = Field(GYRO_CONFIG, 0, 2)
AFS_SEL = Field(ACCEL_CONFIG, 3, 2, codes((0, 2), (1, 4), (2, 8), (3, 16)))
TEMP_FIFO_EN = Field(FIFO_EN, 7)
XYZG_FIFO_EN = Field(FIFO_EN, 4, 3, doc="XG bit 6, YG bit 5, ZG bit 4")
ACCEL_FIFO_EN = Field(FIFO_EN, 3)
FIFO_OFLOW_EN = Field(INT_ENABLE, 4)
FIFO_OFLOW_INT = Field(INT_STATUS, 4)
USER_FIFO_EN = Field(USER_CTRL, 6)
FIFO_RESET = Field(USER_CTRL, 2)
DEVICE_RESET = Field(PWR_MGMT_1, 7)
SLEEP = Field(PWR_MGMT_1, 6)
CLKSEL = Field(PWR_MGMT_1, 0, 3)
STBY_G = Field(PWR_MGMT_2, 0, 3)

# Sensitivity (LSB per g, LSB per deg/s) by full-scale code: 6050 product spec §6.1/6.2,
# 6500 PS §3.1/3.2 (same values). 32.8 and 16.4 are the datasheet figures, not 32768/FS.
ACCEL_LSB_PER_G = {0: 16384.0, 1: 8192.0, 2: 4096.0, 3: 2048.0}
GYRO_LSB_PER_DPS = {0: 131.0, 1: 65.5, 2: 32.8, 3: 16.4}
INTERNAL_RATE_HZ = 1000.0  # with the DLPF on (DLPF_CFG 1..6)


@dataclass(frozen=True)
class MpuModel:
    """What differs between the three chips."""

    chip: str
    who_am_i: int
    fifo_bytes: int          # 6050 PS §7.17: 1024; 6500 PS §4.17 / 9250 PS §4.17: 512
    count_mask: int          # FIFO_COUNT width: 16 bits (6050), 13 bits (6500/9250)
    pwr_mgmt_1_reset: int
    temp_lsb_per_c: float    # 6050: T = raw/340 + 36.53; 6500: T = raw/333.87 + 21
    temp_offset_c: float
    is_6500: bool            # ACCEL_CONFIG2, FIFO_MODE, FCHOICE_B exist

    @property
    def register_map(self) -> RegisterMap:
        regs = [r for r in REGISTERS if self.is_6500 or r is not ACCEL_CONFIG2]
        regs = [Register(r.name, r.addr, self.pwr_mgmt_1_reset, r.access, r.doc)
                if r is PWR_MGMT_1 else r for r in regs]
        regs = [Register(r.name, r.addr, self.who_am_i, r.access, r.doc)
                if r is WHO_AM_I else r for r in regs]
        return RegisterMap(self.chip, regs)


MODELS = {
    "mpu6050": MpuModel("mpu6050", 0x68, 1024, 0xFFFF, 0x40, 340.0, 36.53, False),
    "mpu6500": MpuModel("mpu6500", 0x70, 512, 0x1FFF, 0x01, 333.87, 21.0, True),
    "mpu9250": MpuModel("mpu9250", 0x71, 512, 0x1FFF, 0x01, 333.87, 21.0, True),
}
ADDRESSES = (0x68, 0x69)  # AD0 low / high


class MpuDriver(ImuDriver):
    """MPU-6050/6500/9250: accel (6 bytes) then gyro (6 bytes) per FIFO frame, big-endian."""

    WHO_AM_I_REG = WHO_AM_I.addr
    model: MpuModel = MODELS["mpu6050"]

    def __init_subclass__(cls, model: str = "mpu6050", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.model = MODELS[model]
        cls.chip = model
        cls.who_am_i = cls.model.who_am_i
        cls.fifo_capacity_bytes = cls.model.fifo_bytes

    def choose(self, rate_hz: float, accel_range_g: float, gyro_range_dps: float,
               dlpf_hz: float) -> Settings:
        div = int(min(255, max(0, round(INTERNAL_RATE_HZ / rate_hz - 1))))
        acode, arange = AFS_SEL.nearest(accel_range_g, at_least=True)
        gcode, grange = FS_SEL.nearest(gyro_range_dps, at_least=True)
        dlpf = DLPF_CFG_6500 if self.model.is_6500 else DLPF_CFG_6050
        dcode, bw = dlpf.nearest(dlpf_hz)
        codes_ = {"div": div, "afs": acode, "fs": gcode, "dlpf": dcode}
        if self.model.is_6500:
            codes_["a_dlpf"], bw = A_DLPF_CFG.nearest(dlpf_hz)
        return Settings(INTERNAL_RATE_HZ / (1 + div), arange, grange, bw,
                        1.0 / ACCEL_LSB_PER_G[acode], 1.0 / GYRO_LSB_PER_DPS[gcode], codes_)

    @property
    def frame_bytes(self) -> int:
        return 12 if self.use_gyro else 6

    def configure(self) -> None:
        c = self.settings.codes
        self.write_reg(PWR_MGMT_1.addr, DEVICE_RESET.put(0, 1))
        self.sleep(0.1)  # 6050 RM §4.28: wait for the reset before any further write
        self.write_reg(PWR_MGMT_1.addr, CLKSEL.put(0, 1))  # wake, PLL on the X gyro
        self.sleep(0.01)
        self.write_reg(CONFIG.addr, DLPF_CFG_6050.put(0, c["dlpf"]))  # FIFO_MODE 0
        self.write_reg(SMPLRT_DIV.addr, c["div"])
        self.write_reg(GYRO_CONFIG.addr, FS_SEL.put(0, c["fs"]))
        self.write_reg(ACCEL_CONFIG.addr, AFS_SEL.put(0, c["afs"]))
        if self.model.is_6500:
            self.write_reg(ACCEL_CONFIG2.addr, A_DLPF_CFG.put(0, c["a_dlpf"]))
        self.write_reg(PWR_MGMT_2.addr, 0 if self.use_gyro else STBY_G.put(0, 7))
        self.write_reg(INT_ENABLE.addr, FIFO_OFLOW_EN.put(0, 1))
        fifo_en = ACCEL_FIFO_EN.put(0, 1)
        if self.use_gyro:
            fifo_en = XYZG_FIFO_EN.put(fifo_en, 7)
        self.write_reg(FIFO_EN.addr, fifo_en)
        self.signature = (FIFO_EN.addr, fifo_en)      # 0x00 after a reset
        self.reset_fifo()

    def reset_fifo(self) -> None:
        self.write_reg(USER_CTRL.addr, FIFO_RESET.put(0, 1))   # RM §4.26, with FIFO_EN = 0
        self.write_reg(USER_CTRL.addr, USER_FIFO_EN.put(0, 1))
        self.read_reg(INT_STATUS.addr)                          # clear a stale overflow flag

    def read_fifo(self) -> FifoRead:
        if FIFO_OFLOW_INT.get(self.read_reg(INT_STATUS.addr)):
            return self.empty(overflow=True)
        hi, lo = self.read_block(FIFO_COUNTH.addr, 2)
        count = ((hi << 8) | lo) & self.model.count_mask
        frames = min(count, MAX_READ_BYTES) // self.frame_bytes
        if frames == 0:
            return self.empty()
        data = self.read_burst(FIFO_R_W.addr, frames * self.frame_bytes)
        return self.parse_fifo(data)

    def parse_fifo(self, data: bytes) -> FifoRead:
        """Frames of big-endian int16: AX AY AZ [GX GY GZ] (register order, RM §4.7)."""
        words = np.frombuffer(data, ">i2").reshape(-1, self.frame_bytes // 2).astype(np.int32)
        gyro = words[:, 3:6] if self.use_gyro else None
        return self.to_units(words[:, 0:3], gyro, raw_bytes=len(data))

    def read_sample(self) -> tuple[np.ndarray, np.ndarray | None]:
        raw = np.frombuffer(self.read_block(ACCEL_XOUT_H.addr, 14), ">i2").astype(float)
        gyro = raw[4:7] * self.settings.gyro_lsb_dps if self.use_gyro else None
        return raw[0:3] * self.settings.acc_lsb_g, gyro

    def read_temperature_c(self) -> float:
        hi, lo = self.read_block(TEMP_OUT_H.addr, 2)
        raw = int.from_bytes(bytes((hi, lo)), "big", signed=True)
        return raw / self.model.temp_lsb_per_c + self.model.temp_offset_c


class MPU6050(MpuDriver, model="mpu6050"):
    """MPU-6050 (WHO_AM_I 0x68, 1024-byte FIFO)."""


class MPU6500(MpuDriver, model="mpu6500"):
    """MPU-6500 (WHO_AM_I 0x70, 512-byte FIFO)."""


class MPU9250(MpuDriver, model="mpu9250"):
    """MPU-9250 (WHO_AM_I 0x71, 512-byte FIFO; magnetometer unused)."""
