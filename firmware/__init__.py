"""I2C sensor drivers, register-level emulators and the upper-back motion simulator."""

__all__ = ["SensorError", "SensorReader", "open_sensor"]


def __getattr__(name: str) -> object:
    """Lazy exports (PEP 562), so importing a CLI module does not load numpy for --help."""
    if name in __all__:
        from spinesense.firmware import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
