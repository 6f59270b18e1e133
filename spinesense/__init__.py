"""spinesense: an open-source posture trainer (upper-back IMU, Raspberry Pi, MQTT, InfluxDB)."""

__version__ = "0.1.0"
