"""I2C sensor drivers, register-level emulators and the upper-back motion simulator."""
