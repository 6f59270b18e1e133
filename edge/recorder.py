"""Optional raw recording alongside the live loop: rotating native files, a disk budget.

With ``[recording] enabled = true`` every sample the loop reads is also appended to a
native recording (``spinesense.firmware.recording``: compact, CRC-checked, fsynced about
once a second, so a power cut costs at most the last second). A new file starts every
``rotate_min`` minutes of data; when the folder's recordings exceed ``budget_mb``, the
oldest are deleted. Recordings feed `spinesense replay` (after `record export`) and
threshold tuning with the same pipeline.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from spinesense.samples import SampleChunk

log = logging.getLogger(__name__)

PATTERN = "raw-*.ssrec"


class RotatingRecorder:
    """Writes chunks to ``dir/raw-<UTC time>.ssrec``, rotating and pruning as it goes."""

    def __init__(self, folder: str | Path, info: Any, *, rotate_min: float, budget_mb: float,
                 device: str, fsync: bool = True):
        from spinesense.firmware.recording import default_header

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.header = default_header(info, device=device, source="spinesense edge run")
        self.rotate_s = rotate_min * 60.0
        self.budget = int(budget_mb * 1e6)
        self.fsync = fsync
        self.writer = None
        self.file_start: float | None = None
        self.files = 0
        self.deleted = 0

    def _open(self, t0: float) -> None:
        from spinesense.firmware.recording import RecordingWriter

        if self.writer is not None:
            self.writer.close()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.folder / f"raw-{stamp}.ssrec"
        n = 1
        while path.exists():
            path = self.folder / f"raw-{stamp}-{n}.ssrec"
            n += 1
        self.writer = RecordingWriter(path, self.header, fsync=self.fsync)
        self.file_start = t0
        self.files += 1
        log.info("recording raw samples to %s", path)
        self.prune()

    def write(self, chunk: SampleChunk, events: list[dict[str, Any]]) -> None:
        t0 = float(chunk.t[0])
        if self.writer is None or t0 - (self.file_start or t0) >= self.rotate_s:
            self._open(t0)
        self.writer.write(chunk, events)

    def prune(self) -> None:
        """Delete the oldest closed recordings until the folder is within the budget."""
        files = sorted(self.folder.glob(PATTERN), key=lambda p: p.stat().st_mtime)
        current = self.writer.path if self.writer is not None else None
        total = sum(p.stat().st_size for p in files)
        for path in files:
            if total <= self.budget:
                break
            if path == current:
                continue
            total -= path.stat().st_size
            path.unlink()
            self.deleted += 1
            log.info("recording budget %.0f MB: deleted %s", self.budget / 1e6, path.name)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
