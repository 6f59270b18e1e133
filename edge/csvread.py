"""Reading DESIGN A1 recordings (``t,ax,ay,az,gx,gy,gz``, optionally gzip), fast and strict.

The file is read in large byte blocks (cut at a newline), decoded once and parsed by
numpy's C parser (``np.loadtxt`` on a whole block); empty cells (accelerometer-only rows)
are turned into ``nan`` by plain string replacement first. Only when a block fails does a
slow, line-by-line pass run over that block, to name exactly which line is wrong and how.
`iter_csv` yields one SampleChunk per block, so a replay never holds the whole file.

Gzip is told by its magic bytes and decompressed here, so that a stream that is cut
short (an interrupted copy, Ctrl-C during a write) still yields every complete line
before the cut, with a warning. A last line without its newline that does not parse is
torn and dropped with a warning; anything wrong before the end is an error naming the
line. Formats other than CSV, and unit checks, are in `spinesense.edge.recordings`.
"""

from __future__ import annotations

import io
import itertools
import logging
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from spinesense.firmware.recording import RecordingError  # one error for every format
from spinesense.samples import SampleChunk

__all__ = ["RecordingError", "iter_csv", "read_csv"]

log = logging.getLogger(__name__)

HEADER = ("t", "ax", "ay", "az", "gx", "gy", "gz")
BLOCK_BYTES = 8 << 20
GZIP_MAGIC = b"\x1f\x8b"
RAW_BYTES = 1 << 20


class ByteSource:
    """A recording's bytes in blocks; plain, or gzip (told by its magic bytes, not the name).

    A damaged gzip stream (cut short, or corrupt in the middle) yields everything up to the
    damage and then stops; ``damage`` says what happened, for the reader's warning.
    """

    def __init__(self, path: Path, fh: BinaryIO, block_bytes: int = BLOCK_BYTES):
        self.path = path
        self.fh = fh
        self.block_bytes = block_bytes
        self.gzip = fh.peek(2)[:2] == GZIP_MAGIC if hasattr(fh, "peek") else False
        self.damage: str | None = None

    def blocks(self) -> Iterator[bytes]:
        return self._gunzip() if self.gzip else self._plain()

    def _plain(self) -> Iterator[bytes]:
        while True:
            try:
                data = self.fh.read(self.block_bytes)
            except OSError as exc:
                raise RecordingError(f"{self.path}: cannot read ({exc.strerror})") from None
            if not data:
                return
            yield data

    def _gunzip(self) -> Iterator[bytes]:
        inflate = zlib.decompressobj(wbits=31)
        raw_pos, out, pending = 0, [], 0
        while True:
            raw = self.fh.read(RAW_BYTES)
            if not raw:
                break
            if inflate.eof:  # the last member ended at a read boundary: another follows
                inflate = zlib.decompressobj(wbits=31)
            while raw:
                try:
                    text = inflate.decompress(raw)
                except zlib.error as exc:
                    self.damage = (f"corrupt gzip data near compressed byte {raw_pos} "
                                   f"({exc}); the rest of the file is lost")
                    yield b"".join(out)
                    return
                raw_pos += len(raw) - len(inflate.unused_data)
                out.append(text)
                pending += len(text)
                raw = inflate.unused_data if inflate.eof else b""
                if raw and raw[:2] != GZIP_MAGIC:
                    self.damage = (f"bytes after the end of the gzip data (at compressed "
                                   f"byte {raw_pos}) are not gzip and were ignored")
                    yield b"".join(out)
                    return
                if raw:  # concatenated gzip members, as `cat a.gz b.gz` makes
                    inflate = zlib.decompressobj(wbits=31)
            if pending >= self.block_bytes:
                yield b"".join(out)
                out, pending = [], 0
        if not inflate.eof:
            self.damage = ("the gzip stream is cut short (no end marker, as after an "
                           "interrupted write or copy); whatever followed is lost")
        yield b"".join(out)


def open_bytes(path: Path) -> BinaryIO:
    """Open a recording for reading (``-`` is standard input), with a one-line error."""
    if str(path) == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # buffered: peek() tells gzip from text
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a folder, not a recording") from None
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


def _loadtxt(block: bytes, cols: list[int]) -> np.ndarray:
    # raw bytes through the C parser: faster than str lines or a StringIO
    return np.loadtxt(io.BytesIO(block), delimiter=",", usecols=cols, ndmin=2,
                      dtype=float, encoding="latin-1")


def _fast_block(block: bytes, nlines: int, cols: list[int]) -> np.ndarray | None:
    """The C parser on the whole block; None sends the block to the slow, naming pass.

    Empty cells (accelerometer-only rows) make the C parser fail; only then are they
    turned into ``nan`` and the block parsed again, so that a file with a gyro does not
    pay for three searches of every block.
    """
    try:
        arr = _loadtxt(block, cols)
    except ValueError:
        if b",," not in block and b",\n" not in block and b",\r" not in block:
            return None
        block = block.replace(b",,", b",nan,").replace(b",,", b",nan,")
        block = block.replace(b",\r\n", b",nan\n").replace(b",\n", b",nan\n")
        try:
            arr = _loadtxt(block, cols)
        except ValueError:
            return None
    if arr.shape[0] != nlines or np.isnan(arr[:, :4]).any():
        return None  # blank lines or missing required cells: let the slow path say which
    return arr


def iter_csv(path: str | Path, *, block_bytes: int = BLOCK_BYTES,
             warnings: list[str] | None = None,
             fh: BinaryIO | None = None) -> Iterator[SampleChunk]:
    """Yield the recording block by block; raise RecordingError naming the bad line.

    Damage that leaves the rest readable (a gzip stream cut short, a torn last line) is
    not an error: what is readable is yielded and a warning says what was lost. Warnings
    go to ``warnings`` when given, else to the log. ``fh`` reads an already open file.
    """
    p = Path(path)
    handle = open_bytes(p) if fh is None else fh
    notes: list[str] = [] if warnings is None else warnings
    try:
        yield from _parse(p, ByteSource(p, handle, block_bytes), notes)
    finally:
        if fh is None and handle is not sys.stdin.buffer:
            handle.close()
        if warnings is None:
            for note in notes:
                log.warning("%s", note)


def _split_header(p: Path, src: ByteSource, blocks: Iterator[bytes]) -> tuple[list[int], bytes]:
    buf = b""
    for data in blocks:
        buf += data
        if b"\n" in buf:
            break
    nl = buf.find(b"\n")
    head, rest = (buf, b"") if nl < 0 else (buf[:nl + 1], buf[nl + 1:])
    if src.damage and (nl < 0 or not head.strip()):
        raise RecordingError(f"{p}: damaged gzip (corrupt or cut short), nothing readable, "
                             f"not even the header: {src.damage}")
    if not head.strip():
        raise RecordingError(f"{p}: empty file; expected the header '{','.join(HEADER)}'")
    try:
        if b"\0" in head[:256]:
            raise UnicodeDecodeError("utf-8", head, 0, 1, "NUL byte")
        header = head.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordingError(f"{p}: binary data, not a recording (a CSV with the header "
                             f"'{','.join(HEADER)}', the same gzipped, or a .ssrec)") from None
    return _columns(p, header), rest


def _parse(p: Path, src: ByteSource, warnings: list[str]) -> Iterator[SampleChunk]:
    blocks = src.blocks()
    cols, rest = _split_header(p, src, blocks)
    lineno, prev_t, has_gyro, rows, first_t = 2, -np.inf, None, 0, None
    tail = b""
    for data in itertools.chain([rest], blocks, [None]):
        if data is None:  # the end: a last line without its newline
            if not tail.strip():
                break
            block = _last_line(p, tail, lineno, cols, src.damage, warnings)
            if block is None:
                break
        else:
            buf = tail + data
            cut = buf.rfind(b"\n") + 1
            block, tail = buf[:cut], buf[cut:]
            if not block:
                continue
        nlines = block.count(b"\n")
        arr, numbers = _parse_block(p, block, nlines, lineno, cols)
        chunk, prev_t, has_gyro = _check(p, arr, lineno, numbers, prev_t, has_gyro)
        rows += len(arr)
        if len(arr):
            first_t = float(chunk.t[0]) if first_t is None else first_t
            yield chunk
        lineno += nlines
    if src.damage:
        span = f" (t {first_t:g} to {prev_t:g} s)" if rows else ""
        warnings.append(f"{p}: {src.damage}; read {rows} rows{span}")
    if rows == 0:
        raise RecordingError(f"{p}: no data rows after the header")


def _last_line(p: Path, tail: bytes, lineno: int, cols: list[int], damage: str | None,
               warnings: list[str]) -> bytes | None:
    """The unterminated last line: kept when complete, else dropped with a warning (a
    write or copy that was cut off tears the last line)."""
    if not tail.strip(b"\0 \t\r"):
        warnings.append(f"{p}: {tail.count(0)} NUL bytes at the end of the file (as after a "
                        "power cut) were ignored")
        return None
    text = tail.decode("utf-8", "replace").strip()
    torn = (f"{p}:{lineno}: the last line {text[:40]!r} is torn (the file was cut off "
            "while it was written); ignored")
    if damage:
        warnings.append(torn)
        return None
    block = tail + b"\n"
    try:
        _parse_block(p, block, 1, lineno, cols)
    except RecordingError:
        warnings.append(torn)
        return None
    return block


def _parse_block(p: Path, block: bytes, nlines: int, lineno: int,
                 cols: list[int]) -> tuple[np.ndarray, list[int] | None]:
    """Fast C parse of a block; on failure the slow pass names the bad line."""
    arr = _fast_block(block, nlines, cols)
    if arr is not None:
        return arr, None
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = lineno + block[:exc.start].count(b"\n")
        raise RecordingError(f"{p}:{bad}: not UTF-8 text") from None
    arr = _slow_block(p, text, lineno, cols)
    if len(arr) == nlines:
        return arr, None
    # blank lines were skipped: recount line numbers
    return arr, [lineno + i for i, ln in enumerate(text.split("\n")[:-1]) if ln.strip()]


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
    # Repeated stamps are what cheap loggers write (a 10-40 ms clock tick at a higher
    # sample rate): accepted, and the resampler keeps the first sample of each stamp.
    # Time that goes backwards is a sorting or clock error: refused.
    back = np.flatnonzero(np.diff(tt) < 0)
    if len(back):
        i = int(back[0])
        raise RecordingError(f"{p}:{line_of(i)}: t={tt[i + 1]:.6f} is before the previous "
                             f"t={tt[i]:.6f}; times must not go backwards (sort or split "
                             "the file)")
    if has_gyro is None and len(arr):
        has_gyro = bool(np.isfinite(arr[:, 4:7]).any())
    gyro = np.ascontiguousarray(arr[:, 4:7]) if has_gyro else None
    sat = (np.nan_to_num(arr[:, 7]) != 0) if arr.shape[1] > 7 else None
    chunk = SampleChunk(np.ascontiguousarray(t), np.ascontiguousarray(arr[:, 1:4]), gyro, sat)
    return chunk, float(t[-1]) if len(t) else prev_t, has_gyro


def read_csv(path: str | Path) -> SampleChunk:
    """The whole recording as one SampleChunk (see `iter_csv` for the errors)."""
    return SampleChunk.concat(list(iter_csv(path)))
