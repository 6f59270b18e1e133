"""ST LSM6DS3 / LSM6DSO / LSM6DSOX / ISM330DHCX over I2C, read through the FIFO.

Register map as data, cited from the datasheets: LSM6DS3 DocID026899 rev 10 (§8 register
map, §9 descriptions), LSM6DSO DS12140 rev 3, LSM6DSOX DS12814 rev 3 and ISM330DHCX
DS13012 rev 7 (the last three share the tagged FIFO of DS12140 §9.1-9.20 and §9.75-9.81).

FIFO formats:
- LSM6DS3: 16-bit words, little-endian, through FIFO_DATA_OUT_L/H (0x3E/0x3F); with the
  gyro and the accelerometer batched at the same rate the pattern is GX GY GZ XX XY XZ
  (data set 1 = gyro, data set 2 = accel, DocID026899 §8.4 / AN4650 §8.4).
  FIFO_STATUS3/4 (FIFO_PATTERN) give the pattern index of the next word.
- LSM6DSO/DSOX/ISM330DHCX: 7-byte words: TAG (TAG_SENSOR[7:3], TAG_CNT[2:1],
  TAG_PARITY[0]) then X_L X_H Y_L Y_H Z_L Z_H (DS12140 §9.81, tags in Table 116:
  0x01 gyroscope, 0x02 accelerometer). TAG_CNT identifies the batch time slot.
Burst reads from the FIFO output registers roll back to their first address, so a whole
FIFO drain is one ``i2c_rdwr`` transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinesense.firmware.imu import MAX_READ_BYTES, FifoRead, ImuDriver, Settings
from spinesense.firmware.registers import Field, Register, RegisterMap, codes

WHO_AM_I = Register("WHO_AM_I", 0x0F, access="r", doc="DS3 §9.11 / DSO §9.12")
CTRL1_XL = Register("CTRL1_XL", 0x10, doc="ODR_XL[7:4] FS_XL[3:2]; DS3 BW_XL[1:0], "
                                          "DSO LPF2_XL_EN[1]")
CTRL2_G = Register("CTRL2_G", 0x11, doc="ODR_G[7:4] FS_G[3:2] FS_125[1]; ISM330 FS_4000[0]")
CTRL3_C = Register("CTRL3_C", 0x12, reset=0x04, doc="BOOT[7] BDU[6] IF_INC[2] SW_RESET[0]")
CTRL4_C = Register("CTRL4_C", 0x13, doc="DS3: XL_BW_SCAL_ODR[7] (use BW_XL)")
CTRL8_XL = Register("CTRL8_XL", 0x17, doc="DSO §9.21: HPCF_XL[7:5] (LPF2 bandwidth)")
STATUS_REG = Register("STATUS_REG", 0x1E, access="r", doc="TDA[2] GDA[1] XLDA[0]")
OUT_TEMP_L = Register("OUT_TEMP_L", 0x20, access="r", doc="temperature, little-endian")
OUTX_L_G = Register("OUTX_L_G", 0x22, access="r", doc="gyro X,Y,Z little-endian")
OUTX_L_XL = Register("OUTX_L_XL", 0x28, access="r", doc="accel X,Y,Z little-endian")
FIFO_STATUS1 = Register("FIFO_STATUS1", 0x3A, access="r", doc="DIFF_FIFO[7:0]")
FIFO_STATUS2 = Register("FIFO_STATUS2", 0x3B, access="r",
                        doc="DS3: FTH OVER_RUN FULL EMPTY DIFF[11:8]; "
                            "DSO: WTM_IA OVR_IA FULL_IA CNT_BDR OVR_LATCHED - DIFF[9:8]")
# LSM6DS3 FIFO (DocID026899 §9.2-9.6, §9.45-9.49)
DS3_FIFO_CTRL3 = Register("FIFO_CTRL3", 0x08, doc="DEC_FIFO_GYRO[5:3] DEC_FIFO_XL[2:0]")
DS3_FIFO_CTRL5 = Register("FIFO_CTRL5", 0x0A, doc="ODR_FIFO[6:3] FIFO_MODE[2:0]")
DS3_FIFO_STATUS3 = Register("FIFO_STATUS3", 0x3C, access="r", doc="FIFO_PATTERN[7:0]")
DS3_FIFO_STATUS4 = Register("FIFO_STATUS4", 0x3D, access="r", doc="FIFO_PATTERN[9:8]")
DS3_FIFO_DATA_OUT_L = Register("FIFO_DATA_OUT_L", 0x3E, access="r")
DS3_FIFO_DATA_OUT_H = Register("FIFO_DATA_OUT_H", 0x3F, access="r")
# LSM6DSO family FIFO (DS12140 §9.3-9.6, §9.38-9.39, §9.75-9.81)
DSO_FIFO_CTRL3 = Register("FIFO_CTRL3", 0x09, doc="BDR_GY[7:4] BDR_XL[3:0]")
DSO_FIFO_CTRL4 = Register("FIFO_CTRL4", 0x0A, doc="FIFO_MODE[2:0]")
DSO_FIFO_DATA_OUT_TAG = Register("FIFO_DATA_OUT_TAG", 0x78, access="r")

COMMON = (WHO_AM_I, CTRL1_XL, CTRL2_G, CTRL3_C, CTRL4_C, CTRL8_XL, STATUS_REG, OUT_TEMP_L,
          OUTX_L_G, OUTX_L_XL, FIFO_STATUS1, FIFO_STATUS2)

# ODR codes shared by ODR_XL, ODR_G, DS3 ODR_FIFO and DSO BDR_XL/BDR_GY (Hz)
ODR_CODES = codes((1, 12.5), (2, 26), (3, 52), (4, 104), (5, 208), (6, 416), (7, 833),
                  (8, 1666), (9, 3332), (10, 6664))
ODR_XL = Field(CTRL1_XL, 4, 4, ODR_CODES)
FS_XL = Field(CTRL1_XL, 2, 2, codes((0, 2), (1, 16), (2, 4), (3, 8)))
BW_XL = Field(CTRL1_XL, 0, 2, codes((0, 400), (1, 200), (2, 100), (3, 50)))  # DS3 only
LPF2_XL_EN = Field(CTRL1_XL, 1)                                                # DSO family
ODR_G = Field(CTRL2_G, 4, 4, ODR_CODES)
FS_G = Field(CTRL2_G, 2, 2, codes((0, 250), (1, 500), (2, 1000), (3, 2000)))
FS_125 = Field(CTRL2_G, 1)
FS_4000 = Field(CTRL2_G, 0)  # ISM330DHCX only
BOOT = Field(CTRL3_C, 7)
BDU = Field(CTRL3_C, 6)
IF_INC = Field(CTRL3_C, 2)
SW_RESET = Field(CTRL3_C, 0)
XL_BW_SCAL_ODR = Field(CTRL4_C, 7)
# LPF2 cutoff as a divisor of the ODR (DS12140 Table 60, LPF2_XL_EN = 1)
HPCF_XL = Field(CTRL8_XL, 5, 3, codes((0, 4), (1, 10), (2, 20), (3, 45), (4, 100), (5, 200),
                                      (6, 400), (7, 800)))
DEC_FIFO_GYRO = Field(DS3_FIFO_CTRL3, 3, 3)   # 0: not in FIFO, 1: no decimation
DEC_FIFO_XL = Field(DS3_FIFO_CTRL3, 0, 3)
ODR_FIFO = Field(DS3_FIFO_CTRL5, 3, 4, ODR_CODES)
DS3_FIFO_MODE = Field(DS3_FIFO_CTRL5, 0, 3)
BDR_GY = Field(DSO_FIFO_CTRL3, 4, 4, ODR_CODES)
BDR_XL = Field(DSO_FIFO_CTRL3, 0, 4, ODR_CODES)
DSO_FIFO_MODE = Field(DSO_FIFO_CTRL4, 0, 3)
FIFO_BYPASS, FIFO_STOP_WHEN_FULL, FIFO_CONTINUOUS = 0b000, 0b001, 0b110

# FIFO_STATUS2 bits
DS3_OVER_RUN, DS3_FULL, DS3_EMPTY = 0x40, 0x20, 0x10
DSO_OVR_IA, DSO_FULL_IA, DSO_OVR_LATCHED = 0x40, 0x20, 0x08
TAG_GYRO, TAG_ACCEL = 0x01, 0x02

# Sensitivity by full scale: DS3 Table 3, DS12140 Table 2 (mg/LSB, mdps/LSB)
ACCEL_MG_PER_LSB = {2: 0.061, 4: 0.122, 8: 0.244, 16: 0.488}
GYRO_MDPS_PER_LSB = {125: 4.375, 250: 8.75, 500: 17.50, 1000: 35.0, 2000: 70.0, 4000: 140.0}
ADDRESSES = (0x6A, 0x6B)  # SA0/SDO low / high


@dataclass(frozen=True)
class StModel:
    chip: str
    who_am_i: int
    tagged: bool
    fifo_words: int          # DS3: 8 kbyte = 4096 16-bit words; DSO family: 3 kbyte = 512
    temp_lsb_per_c: float    # DS3 16 LSB/°C, DSO family 256 LSB/°C; 0 LSB = 25 °C
    gyro_ranges: tuple[int, ...]

    @property
    def register_map(self) -> RegisterMap:
        fifo = ((DSO_FIFO_CTRL3, DSO_FIFO_CTRL4, DSO_FIFO_DATA_OUT_TAG) if self.tagged else
                (DS3_FIFO_CTRL3, DS3_FIFO_CTRL5, DS3_FIFO_STATUS3, DS3_FIFO_STATUS4,
                 DS3_FIFO_DATA_OUT_L, DS3_FIFO_DATA_OUT_H))
        regs = [Register(r.name, r.addr, self.who_am_i, r.access, r.doc) if r is WHO_AM_I
                else r for r in COMMON + fifo]
        return RegisterMap(self.chip, regs)

    @property
    def fifo_word_bytes(self) -> int:
        return 7 if self.tagged else 2


MODELS = {
    "lsm6ds3": StModel("lsm6ds3", 0x69, False, 4096, 16.0, (125, 250, 500, 1000, 2000)),
    "lsm6dso": StModel("lsm6dso", 0x6C, True, 512, 256.0, (125, 250, 500, 1000, 2000)),
    "lsm6dsox": StModel("lsm6dsox", 0x6C, True, 512, 256.0, (125, 250, 500, 1000, 2000)),
    "ism330dhcx": StModel("ism330dhcx", 0x6B, True, 512, 256.0,
                          (125, 250, 500, 1000, 2000, 4000)),
}


def gyro_range_bits(model: StModel, dps: int) -> int:
    """CTRL2_G bits 3..0 for a gyro full scale (FS_G, FS_125, FS_4000)."""
    if dps == 125:
        return FS_125.put(0, 1)
    if dps == 4000:
        return FS_4000.put(0, 1)
    return FS_G.put(0, {250: 0, 500: 1, 1000: 2, 2000: 3}[dps])


def gyro_range_of(model: StModel, ctrl2_g: int) -> int:
    if FS_125.get(ctrl2_g):
        return 125
    if model.gyro_ranges[-1] == 4000 and FS_4000.get(ctrl2_g):
        return 4000
    return int(FS_G.meaning(FS_G.get(ctrl2_g)) or 250)


class Lsm6Driver(ImuDriver):
    """The ST family; ``model`` picks the FIFO format and WHO_AM_I."""

    WHO_AM_I_REG = WHO_AM_I.addr
    model: StModel = MODELS["lsm6ds3"]

    def __init_subclass__(cls, model: str = "lsm6ds3", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.model = MODELS[model]
        cls.chip = model
        cls.who_am_i = cls.model.who_am_i
        cls.fifo_capacity_bytes = cls.model.fifo_words * cls.model.fifo_word_bytes

    def choose(self, rate_hz: float, accel_range_g: float, gyro_range_dps: float,
               dlpf_hz: float) -> Settings:
        odr_code, odr = ODR_XL.nearest(rate_hz)
        acode, arange = FS_XL.nearest(accel_range_g, at_least=True)
        grange = next((r for r in self.model.gyro_ranges if r >= gyro_range_dps),
                      self.model.gyro_ranges[-1])
        if self.model.tagged:
            fcode, div = HPCF_XL.nearest(odr / dlpf_hz)
            bw = odr / div
        else:
            fcode, bw = BW_XL.nearest(dlpf_hz)
        return Settings(odr, arange, grange, bw, ACCEL_MG_PER_LSB[int(arange)] / 1000.0,
                        GYRO_MDPS_PER_LSB[grange] / 1000.0,
                        {"odr": odr_code, "fs_xl": acode, "filter": fcode})

    @property
    def words_per_sample(self) -> int:
        """FIFO words per sample: DS3 three axis words per sensor, DSO one tagged word."""
        per_sensor = 1 if self.model.tagged else 3
        return per_sensor * (2 if self.use_gyro else 1)

    @property
    def frame_bytes(self) -> int:
        return self.words_per_sample * self.model.fifo_word_bytes

    def configure(self) -> None:
        c, s = self.settings.codes, self.settings
        self.write_reg(CTRL3_C.addr, SW_RESET.put(CTRL3_C.reset, 1))
        self.sleep(0.01)  # SW_RESET clears itself within 50 µs; be generous
        self.write_reg(CTRL3_C.addr, BDU.put(IF_INC.put(0, 1), 1))
        ctrl1 = FS_XL.put(ODR_XL.put(0, c["odr"]), c["fs_xl"])
        if self.model.tagged:
            ctrl1 = LPF2_XL_EN.put(ctrl1, 1)
            self.write_reg(CTRL8_XL.addr, HPCF_XL.put(0, c["filter"]))
        else:
            ctrl1 = BW_XL.put(ctrl1, c["filter"])
            self.write_reg(CTRL4_C.addr, XL_BW_SCAL_ODR.put(0, 1))
        self.write_reg(CTRL1_XL.addr, ctrl1)
        self.signature = (CTRL1_XL.addr, ctrl1)       # 0x00 (power-down) after a reset
        gyro_odr = c["odr"] if self.use_gyro else 0
        self.write_reg(CTRL2_G.addr, ODR_G.put(gyro_range_bits(self.model,
                                                               int(s.gyro_range_dps)),
                                               gyro_odr))
        if self.model.tagged:
            self.write_reg(DSO_FIFO_CTRL3.addr, BDR_GY.put(BDR_XL.put(0, c["odr"]), gyro_odr))
        else:
            dec = DEC_FIFO_XL.put(0, 1)
            self.write_reg(DS3_FIFO_CTRL3.addr, DEC_FIFO_GYRO.put(dec, int(self.use_gyro)))
        self.reset_fifo()

    def _fifo_mode(self, mode: int) -> None:
        if self.model.tagged:
            self.write_reg(DSO_FIFO_CTRL4.addr, DSO_FIFO_MODE.put(0, mode))
        else:
            self.write_reg(DS3_FIFO_CTRL5.addr,
                           DS3_FIFO_MODE.put(ODR_FIFO.put(0, self.settings.codes["odr"]), mode))

    def reset_fifo(self) -> None:
        """Bypass mode empties the FIFO; continuous mode restarts it (DS3 §8.2, DSO §9.6)."""
        self._fifo_mode(FIFO_BYPASS)
        self._fifo_mode(FIFO_CONTINUOUS)

    def read_fifo(self) -> FifoRead:
        status = self.read_block(FIFO_STATUS1.addr, 2 if self.model.tagged else 4)
        if self.model.tagged:
            if status[1] & (DSO_OVR_IA | DSO_OVR_LATCHED):
                return self.empty(overflow=True)
            words = status[0] | ((status[1] & 0x03) << 8)
        else:
            if status[1] & DS3_OVER_RUN:
                return self.empty(overflow=True)
            words = status[0] | ((status[1] & 0x0F) << 8)
        wps = self.words_per_sample
        skip = 0
        if not self.model.tagged:
            pattern = status[2] | ((status[3] & 0x03) << 8)
            skip = (wps - pattern) % wps   # realign to the start of a GX..XZ set
        limit = MAX_READ_BYTES // self.model.fifo_word_bytes
        n = skip + (min(words - skip, limit - skip) // wps) * wps if words > skip else 0
        if n <= skip:
            return self.empty()
        reg = DSO_FIFO_DATA_OUT_TAG.addr if self.model.tagged else DS3_FIFO_DATA_OUT_L.addr
        data = self.read_burst(reg, n * self.model.fifo_word_bytes)
        return self.parse_fifo(data[skip * self.model.fifo_word_bytes:])

    def parse_fifo(self, data: bytes) -> FifoRead:
        if self.model.tagged:
            return self._parse_tagged(data)
        words = np.frombuffer(data, "<i2").reshape(-1, 3 * (2 if self.use_gyro else 1))
        words = words.astype(np.int32)
        if self.use_gyro:
            return self.to_units(words[:, 3:6], words[:, 0:3], raw_bytes=len(data))
        return self.to_units(words, None, raw_bytes=len(data))

    def _parse_tagged(self, data: bytes) -> FifoRead:
        """Pair gyro and accel words by TAG_CNT time slot; other tags are skipped."""
        raw = np.frombuffer(data, np.uint8).reshape(-1, 7)
        tag, cnt = raw[:, 0] >> 3, (raw[:, 0] >> 1) & 0x03
        values = np.ascontiguousarray(raw[:, 1:]).view("<i2").astype(np.int32)
        if not self.use_gyro:
            acc = values[tag == TAG_ACCEL]
            return self.to_units(acc, None, raw_bytes=len(data))
        pairs = tag[0::2], tag[1::2]
        if (len(tag) % 2 == 0 and (pairs[0] == TAG_GYRO).all() and (pairs[1] == TAG_ACCEL).all()
                and (cnt[0::2] == cnt[1::2]).all()):    # the usual layout: G, A per slot
            return self.to_units(values[1::2], values[0::2], raw_bytes=len(data))
        keep = (tag == TAG_ACCEL) | (tag == TAG_GYRO)
        tag, cnt, values = tag[keep], cnt[keep], values[keep]
        if len(tag) == 0:
            return self.empty()
        slot = np.concatenate(([0], np.cumsum(cnt[1:] != cnt[:-1])))
        nslots = int(slot[-1]) + 1
        acc = np.zeros((nslots, 3), np.int32)
        gyro = np.zeros((nslots, 3), np.int32)
        has_a = np.zeros(nslots, bool)
        has_g = np.zeros(nslots, bool)
        is_a = tag == TAG_ACCEL
        acc[slot[is_a]], has_a[slot[is_a]] = values[is_a], True
        gyro[slot[~is_a]], has_g[slot[~is_a]] = values[~is_a], True
        whole = has_a & has_g
        return self.to_units(acc[whole], gyro[whole], raw_bytes=len(data))

    def read_sample(self) -> tuple[np.ndarray, np.ndarray | None]:
        raw = np.frombuffer(self.read_block(OUTX_L_G.addr, 12), "<i2").astype(float)
        gyro = raw[0:3] * self.settings.gyro_lsb_dps if self.use_gyro else None
        return raw[3:6] * self.settings.acc_lsb_g, gyro

    def read_temperature_c(self) -> float:
        lo, hi = self.read_block(OUT_TEMP_L.addr, 2)
        raw = int.from_bytes(bytes((lo, hi)), "little", signed=True)
        return raw / self.model.temp_lsb_per_c + 25.0


class LSM6DS3(Lsm6Driver, model="lsm6ds3"):
    """LSM6DS3 (WHO_AM_I 0x69, 8 kbyte untagged FIFO)."""


class LSM6DSO(Lsm6Driver, model="lsm6dso"):
    """LSM6DSO (WHO_AM_I 0x6C, tagged FIFO)."""


class LSM6DSOX(Lsm6Driver, model="lsm6dsox"):
    """LSM6DSOX (WHO_AM_I 0x6C, tagged FIFO; machine-learning core unused)."""


class ISM330DHCX(Lsm6Driver, model="ism330dhcx"):
    """ISM330DHCX (WHO_AM_I 0x6B, tagged FIFO, gyro up to ±4000 dps)."""
