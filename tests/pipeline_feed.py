"""Feeding a recording to the pipeline in chunks, as the live loop does (tests only)."""

from __future__ import annotations

from spinesense.config import Config
from spinesense.edge.pipeline import Pipeline
from spinesense.samples import SampleChunk


def feed_in_chunks(chunk: SampleChunk, sizes: list[int],
                   window: tuple[float, float] | None = None) -> list[dict]:
    """All records of ``chunk`` fed in pieces of ``sizes`` (cycled), then flushed."""
    pipe = Pipeline(Config(), states=True, calibrate_window=window)
    out: list[dict] = []
    i, j = 0, 0
    while i < len(chunk):
        n = sizes[j % len(sizes)]
        out += pipe.process(chunk[i:i + n])
        i, j = i + n, j + 1
    return out + pipe.flush()
