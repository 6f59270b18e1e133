"""Reading DESIGN A1 recordings (``t,ax,ay,az,gx,gy,gz``, optionally gzip), fast and strict.

The file is read in large byte blocks (cut at a newline), decoded once and parsed by
numpy's C parser (``np.loadtxt`` on a whole block); empty cells (accelerometer-only rows)
are turned into ``nan`` by plain string replacement first. Only when a block fails does a
slow, line-by-line pass run over that block, to name exactly which line is wrong and how.
`iter_csv` yields one SampleChunk per block, so a replay never holds the whole file.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from spinesense.samples import SampleChunk

HEADER = ("t", "ax", "ay", "az", "gx", "gy", "gz")
BLOCK_BYTES = 8 << 20


class RecordingError(ValueError):
    """A malformed recording; the message names the file, the line and the problem."""


def _open(path: Path) -> BinaryIO:
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror})") from None


def _columns(path: Path, line: str) -> list[int]:
    """Columns to read: t..gz plus a ``saturated``/``sat`` column if there is one."""
    cols = [c.strip() for c in line.strip().lstrip("\ufeff").split(",")]
    if tuple(cols[:7]) != HEADER:
        raise RecordingError(f"{path}:1: header is {line.strip()[:60]!r}; expected "
                             f"'{','.join(HEADER)}' (extra columns may follow)")
    sat = next((i for i, c in enumerate(cols) if c in ("saturated", "sat")), None)
    return list(range(7)) + ([sat] if sat is not None else [])


def _slow_block(path: Path, text: str, first_line: int, cols: list[int]) -> np.ndarray:
    """Parse line by line, failing on the first bad line with its number."""
    rows: list[list[float]] = []
    for i, raw in enumerate(text.split("\n")[:-1]):
        lineno = first_line + i
        line = raw.rstrip("\r")
        if not line.strip():
            continue  # blank lines are tolerated
        cells = line.split(",")
        if len(cells) < 7:
            raise RecordingError(f"{path}:{lineno}: {len(cells)} columns, expected at least 7 "
                                 "(t,ax,ay,az,gx,gy,gz)")
        row = []
        for j, col in enumerate(cols):
            cell = cells[col].strip() if col < len(cells) else ""
            name = HEADER[j] if j < 7 else f"column {col + 1}"
            if cell == "":
                if j < 4:
                    raise RecordingError(f"{path}:{lineno}: column {name} is empty; t and "
                                         "ax..az are required")
                row.append(np.nan)
                continue
            try:
                row.append(float(cell))
            except ValueError:
                raise RecordingError(f"{path}:{lineno}: {name} is {cell[:20]!r}, not a "
                                     "number") from None
        rows.append(row)
    return np.array(rows, float).reshape(-1, len(cols))


def _fast_block(block: bytes, nlines: int, cols: list[int]) -> np.ndarray | None:
    if b",," in block or b",\n" in block or b",\r" in block:
        block = block.replace(b",,", b",nan,").replace(b",,", b",nan,")
        block = block.replace(b",\r\n", b",nan\n").replace(b",\n", b",nan\n")
    try:
        # raw bytes through the C parser: faster than str lines or a StringIO
        arr = np.loadtxt(io.BytesIO(block), delimiter=",", usecols=cols, ndmin=2,
                         dtype=float, encoding="latin-1")
    except ValueError:
        return None
    if arr.shape[0] != nlines or np.isnan(arr[:, :4]).any():
        return None  # blank lines or missing required cells: let the slow path say which
    return arr


def iter_csv(path: str | Path, *, block_bytes: int = BLOCK_BYTES) -> Iterator[SampleChunk]:
    """Yield the recording block by block; raise RecordingError naming the bad line."""
    p = Path(path)
    with _open(p) as fh:
        try:
            header = fh.readline().decode("utf-8")
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
            raise RecordingError(f"{p}: corrupt or not a CSV ({exc})") from None
        if not header:
            raise RecordingError(f"{p}: empty file; expected the header "
                                 f"'{','.join(HEADER)}'")
        cols = _columns(p, header)
        lineno, prev_t, has_gyro, rows = 2, -np.inf, None, 0
        rest = b""
        while True:
            try:
                data = fh.read(block_bytes)
            except (OSError, EOFError, zlib.error) as exc:
                raise RecordingError(f"{p}: corrupt or truncated after line {lineno - 1} "
                                     f"({exc})") from None
            buf = rest + data
            if not data:
                if not buf.strip():
                    break
                buf += b"\n"
            cut = buf.rfind(b"\n") + 1
            block, rest = buf[:cut], buf[cut:]
            if not block:
                continue
            nlines = block.count(b"\n")
            arr = _fast_block(block, nlines, cols)
            if arr is None:
                try:
                    text = block.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad = lineno + block[:exc.start].count(b"\n")
                    raise RecordingError(f"{p}:{bad}: not UTF-8 text") from None
                arr = _slow_block(p, text, lineno, cols)
                if len(arr) != nlines:  # blank lines were skipped: recount line numbers
                    numbers = [lineno + i for i, ln in enumerate(text.split("\n")[:-1])
                               if ln.strip()]
                else:
                    numbers = None
            else:
                numbers = None
            chunk, prev_t, has_gyro = _check(p, arr, lineno, numbers, prev_t, has_gyro)
            rows += len(arr)
            if len(arr):
                yield chunk
            lineno += nlines
            if not data:
                break
    if rows == 0:
        raise RecordingError(f"{p}: no data rows after the header")


def _check(p: Path, arr: np.ndarray, lineno: int, numbers: list[int] | None,
           prev_t: float, has_gyro: bool | None) -> tuple[SampleChunk, float, bool | None]:
    def line_of(i: int) -> int:
        return numbers[i] if numbers is not None else lineno + i

    t = arr[:, 0]
    bad = ~np.isfinite(t)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RecordingError(f"{p}:{line_of(i)}: t is {t[i]}, not a finite time")
    tt = np.concatenate(([prev_t], t))
    back = np.flatnonzero(np.diff(tt) <= 0)
    if len(back):
        i = int(back[0])
        raise RecordingError(f"{p}:{line_of(i)}: t={tt[i + 1]:.6f} is not after the previous "
                             f"t={tt[i]:.6f}; times must increase (sort or split the file)")
    if has_gyro is None and len(arr):
        has_gyro = bool(np.isfinite(arr[:, 4:7]).any())
    gyro = np.ascontiguousarray(arr[:, 4:7]) if has_gyro else None
    sat = (np.nan_to_num(arr[:, 7]) != 0) if arr.shape[1] > 7 else None
    chunk = SampleChunk(np.ascontiguousarray(t), np.ascontiguousarray(arr[:, 1:4]), gyro, sat)
    return chunk, float(t[-1]) if len(t) else prev_t, has_gyro


def read_csv(path: str | Path) -> SampleChunk:
    """The whole recording as one SampleChunk (see `iter_csv` for the errors)."""
    return SampleChunk.concat(list(iter_csv(path)))
