"""The native recording format: compact, append-only, crash-safe; export to DESIGN A1 CSV.

Layout (all integers little-endian)::

    file header   b"SPINEREC" | u16 version | u32 json_len | u32 crc32(json) | json
    block*        b"BK" | u8 kind | u8 flags | u32 payload_len | u32 count | u32 crc32 | payload

A data block (kind ``D``) holds about one second of samples: ``f64 t0``, then the time
offsets in microseconds and the accel (and gyro) counts as columns of first differences,
split into byte planes (flag bit 1), then the saturation flags as a bit field; the payload
is zlib-compressed (flag bit 0). Counts use the LSB sizes in the header, so data from a
driver round-trip exactly. An event block (kind ``E``) holds sensor events (gaps, sensor
lost/back) as JSON.

Each block is written with one ``write`` and then ``fsync``ed, so a power cut loses at most
the block being collected (about a second) and leaves, at worst, a torn last block. The
reader checks every block's length and CRC, resynchronises past damage, and stops cleanly
at a torn tail, reporting what it skipped.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from spinesense.samples import SampleChunk

MAGIC = b"SPINEREC"
VERSION = 1
FILE_HEAD = struct.Struct("<8sHII")
BLOCK_HEAD = struct.Struct("<2sBBIII")
BLOCK_MAGIC = b"BK"
KIND_DATA, KIND_EVENTS = ord("D"), ord("E")
FLAG_ZLIB = 0x01
FLAG_DELTA = 0x02      # time offsets and counts stored as first differences, byte-shuffled
MAX_BLOCK_BYTES = 64 << 20
CSV_HEADER = "t,ax,ay,az,gx,gy,gz,saturated"


class RecordingError(ValueError):
    """The file is not a readable recording; the message names the file and the problem."""


@dataclass
class Recording:
    """Everything read back from a recording file."""

    header: dict[str, Any]
    chunk: SampleChunk
    events: list[dict[str, Any]]
    blocks: int = 0
    skipped_bytes: int = 0       # damaged or torn bytes that were passed over
    torn_tail: bool = False      # the file ends inside a block (e.g. a power cut)
    notes: list[str] = field(default_factory=list)


def default_header(info: Any, **extra: Any) -> dict[str, Any]:
    """A header from a `SensorInfo` (or a dict with the same keys); ``extra`` is free-form.

    The chip's LSB sizes (``acc_lsb_g``, ``gyro_lsb_dps``) make driver data round-trip
    exactly; without them the writer quantises to 1/32768 of the full scale.
    """
    data = info.as_dict() if hasattr(info, "as_dict") else dict(info)
    header = {"format": "spinesense-recording", "version": VERSION,
              "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
              "chip": data.get("chip", "unknown"), "rate_hz": float(data["rate_hz"]),
              "accel_range_g": float(data.get("accel_range_g", 16)),
              "gyro_range_dps": float(data.get("gyro_range_dps", 2000)),
              "gyro": bool(data.get("use_gyro", True)),
              "time_base": "seconds, monotonic clock of the recording host"}
    for key in ("acc_lsb_g", "gyro_lsb_dps"):
        if data.get(key):
            header[key] = float(data[key])
    header.update(extra)
    return header


class RecordingWriter:
    """Appends samples and events; one fsync'ed block per ``block_s`` of data."""

    def __init__(self, path: str | Path, header: dict[str, Any], *, block_s: float = 1.0,
                 fsync: bool = True, overwrite: bool = False):
        self.path = Path(path)
        self.header = dict(header)
        self.header.setdefault("format", "spinesense-recording")
        self.header["version"] = VERSION
        self.gyro = bool(self.header.get("gyro", True))
        # counts resolution: the chip's LSB by default, so driver data round-trip exactly
        self.acc_lsb = float(self.header.setdefault(
            "acc_lsb_g", 2.0 * float(self.header.get("accel_range_g", 16)) / 65536))
        self.gyro_lsb = float(self.header.setdefault(
            "gyro_lsb_dps", 2.0 * float(self.header.get("gyro_range_dps", 2000)) / 65536))
        self.block_s = block_s
        self.fsync = fsync
        self._pending: list[SampleChunk] = []
        self._pending_events: list[dict[str, Any]] = []
        self.samples = 0
        self.blocks = 0
        try:
            self._fh: BinaryIO = open(self.path, "wb" if overwrite else "xb")  # noqa: SIM115
        except FileExistsError:
            raise RecordingError(f"{self.path}: already exists; choose another name or "
                                 "pass --force to overwrite it") from None
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot create ({exc.strerror})") from None
        body = json.dumps(self.header, sort_keys=True).encode()
        self._write(FILE_HEAD.pack(MAGIC, VERSION, len(body), zlib.crc32(body)) + body)

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def write(self, chunk: SampleChunk | None, events: list[dict[str, Any]] = ()) -> None:
        if chunk is not None and len(chunk):
            if self.gyro and chunk.gyro is None:
                raise RecordingError(f"{self.path}: the header promises gyro data but a "
                                     "chunk has none")
            self._pending.append(chunk)
        self._pending_events.extend(events)
        if self._pending:
            n = sum(len(c) for c in self._pending)
            span = self._pending[-1].t[-1] - self._pending[0].t[0]
            # n samples cover n periods; 10 % slack so 4 polls of 0.25 s make one block
            if span * n / max(n - 1, 1) >= 0.9 * self.block_s:
                self.flush()

    def flush(self) -> None:
        """Write what is pending as blocks now (data first, then the events)."""
        out = b""
        if self._pending:
            chunk = SampleChunk.concat(self._pending)
            self._pending = []
            out += self._data_block(chunk)
            self.samples += len(chunk)
        if self._pending_events:
            body = json.dumps(self._pending_events, default=float).encode()
            out += _block(KIND_EVENTS, len(self._pending_events), body)
            self._pending_events = []
        if out:
            self._write(out)

    def _data_block(self, chunk: SampleChunk) -> bytes:
        t0 = float(chunk.t[0])
        offsets = np.rint((chunk.t - t0) * 1e6)
        if offsets[-1] > np.iinfo(np.int32).max:
            raise RecordingError("a block may span at most ~35 minutes")
        columns = [offsets.astype(np.int64)]
        columns += list(np.clip(np.rint(chunk.acc / self.acc_lsb), -32768, 32767).T)
        if self.gyro:
            columns += list(np.clip(np.rint(chunk.gyro / self.gyro_lsb), -32768, 32767).T)
        sat = (np.zeros(len(chunk), bool) if chunk.saturated is None
               else np.asarray(chunk.saturated, bool))
        self.blocks += 1
        body = struct.pack("<d", t0) + _shuffle(columns) + np.packbits(sat).tobytes()
        return _block(KIND_DATA, len(chunk), body, FLAG_DELTA)
    def close(self) -> None:
        if self._fh.closed:
            return
        self.flush()
        self._fh.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _block(kind: int, count: int, body: bytes, flags: int = 0) -> bytes:
    payload = zlib.compress(body, 6)
    return BLOCK_HEAD.pack(BLOCK_MAGIC, kind, FLAG_ZLIB | flags, len(payload), count,
                           zlib.crc32(payload)) + payload


def _shuffle(columns: list[np.ndarray]) -> bytes:
    """First differences as int32, split into byte planes: the high bytes of slowly
    changing IMU counts are nearly constant, which zlib compresses to almost nothing."""
    deltas = np.stack([np.diff(np.asarray(c, np.int64), prepend=0) for c in columns])
    planes = deltas.astype("<i4").view(np.uint8).reshape(len(columns), -1, 4)
    return np.ascontiguousarray(planes.transpose(0, 2, 1)).tobytes()


def _unshuffle(body: bytes, pos: int, ncols: int, n: int) -> np.ndarray:
    planes = np.frombuffer(body, np.uint8, ncols * 4 * n, pos).reshape(ncols, 4, n)
    deltas = np.ascontiguousarray(planes.transpose(0, 2, 1)).view("<i4").reshape(ncols, n)
    return np.cumsum(deltas, axis=1, dtype=np.int64)


def _parse_header(path: Path, data: bytes) -> tuple[dict[str, Any], int]:
    if len(data) < FILE_HEAD.size or data[:8] != MAGIC:
        raise RecordingError(f"{path}: not a spinesense recording (no {MAGIC.decode()} "
                             "header); CSV files go to `spinesense replay` directly")
    _magic, version, length, crc = FILE_HEAD.unpack_from(data)
    body = data[FILE_HEAD.size:FILE_HEAD.size + length]
    if version > VERSION:
        raise RecordingError(f"{path}: format version {version} is newer than this "
                             f"spinesense reads ({VERSION}); upgrade spinesense")
    if len(body) != length or zlib.crc32(body) != crc:
        raise RecordingError(f"{path}: the file header is damaged; nothing can be recovered")
    return json.loads(body), FILE_HEAD.size + length


def iter_blocks(path: str | Path, data: bytes | None = None) -> Iterator[tuple[int, Any, int]]:
    """Yield (kind, decoded block, offset) and finally (0, notes dict, offset). ``data``:
    the file's bytes when already read (``path`` then only names it in messages)."""
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RecordingError(f"{path}: cannot read ({exc.strerror})") from None
    header, pos = _parse_header(path, data)
    yield -1, header, 0
    skipped, torn = 0, False
    gyro = bool(header.get("gyro", True))
    while pos < len(data):
        block = _try_block(data, pos, header, gyro)
        if block is None:
            nxt = data.find(BLOCK_MAGIC, pos + 1)
            while nxt != -1 and _try_block(data, nxt, header, gyro) is None:
                nxt = data.find(BLOCK_MAGIC, nxt + 1)
            if nxt == -1:
                skipped += len(data) - pos
                torn = True
                break
            skipped += nxt - pos
            pos = nxt
            continue
        kind, value, size = block
        yield kind, value, pos
        pos += size
    yield 0, {"skipped_bytes": skipped, "torn_tail": torn}, pos


def _try_block(data: bytes, pos: int, header: dict[str, Any],
               gyro: bool) -> tuple[int, Any, int] | None:
    if pos + BLOCK_HEAD.size > len(data):
        return None
    magic, kind, flags, length, count, crc = BLOCK_HEAD.unpack_from(data, pos)
    start = pos + BLOCK_HEAD.size
    if (magic != BLOCK_MAGIC or kind not in (KIND_DATA, KIND_EVENTS) or length > MAX_BLOCK_BYTES
            or start + length > len(data)):
        return None
    payload = data[start:start + length]
    if zlib.crc32(payload) != crc:
        return None
    body = zlib.decompress(payload) if flags & FLAG_ZLIB else payload
    size = BLOCK_HEAD.size + length
    if kind == KIND_EVENTS:
        return kind, json.loads(body), size
    return kind, _decode_data(body, count, header, gyro, bool(flags & FLAG_DELTA)), size


def _decode_data(body: bytes, n: int, header: dict[str, Any], gyro: bool,
                 delta: bool) -> SampleChunk:
    (t0,) = struct.unpack_from("<d", body)
    pos = 8
    acc_lsb, gyro_lsb = float(header["acc_lsb_g"]), float(header.get("gyro_lsb_dps", 0))
    ncols = 7 if gyro else 4
    if delta:
        cols = _unshuffle(body, pos, ncols, n)
        pos += ncols * 4 * n
        t = t0 + cols[0] / 1e6
        acc = cols[1:4].T * acc_lsb
        gyr = cols[4:7].T * gyro_lsb if gyro else None
    else:                                   # plain layout: i32 offsets, i16 (n, 3) arrays
        t = t0 + np.frombuffer(body, "<i4", n, pos) / 1e6
        pos += 4 * n
        acc = np.frombuffer(body, "<i2", 3 * n, pos).reshape(n, 3) * acc_lsb
        pos += 6 * n
        gyr = None
        if gyro:
            gyr = np.frombuffer(body, "<i2", 3 * n, pos).reshape(n, 3) * gyro_lsb
            pos += 6 * n
    sat = np.unpackbits(np.frombuffer(body, np.uint8, (n + 7) // 8, pos))[:n].astype(bool)
    return SampleChunk(t, acc, gyr, sat)


def read_recording(path: str | Path) -> Recording:
    """Read a whole recording; damage is skipped and reported, never fatal past the header."""
    chunks: list[SampleChunk] = []
    events: list[dict[str, Any]] = []
    header: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    blocks = 0
    for kind, value, _pos in iter_blocks(path):
        if kind == -1:
            header = value
        elif kind == KIND_DATA:
            chunks.append(value)
            blocks += 1
        elif kind == KIND_EVENTS:
            events.extend(value)
            blocks += 1
        else:
            notes = value
    gyro = bool(header.get("gyro", True))
    chunk = (SampleChunk.concat(chunks) if chunks else
             SampleChunk(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)) if gyro else None,
                         np.zeros(0, bool)))
    rec = Recording(header, chunk, events, blocks, notes.get("skipped_bytes", 0),
                    notes.get("torn_tail", False))
    if rec.torn_tail:
        rec.notes.append(f"the file ends inside a block ({rec.skipped_bytes} bytes ignored), "
                         "as after a power cut; everything before it was read")
    elif rec.skipped_bytes:
        rec.notes.append(f"{rec.skipped_bytes} damaged bytes were skipped")
    return rec


def read_many(paths: list[str | Path]) -> Recording:
    """Several recordings of one session (e.g. the edge's hourly files) as one, in time
    order; they must not overlap, since the CSV's t has to increase."""
    pairs = sorted(((read_recording(p), p) for p in paths),
                   key=lambda rp: rp[0].chunk.t[0] if len(rp[0].chunk) else math.inf)
    recs = [r for r, _p in pairs]
    if len(recs) == 1:
        return recs[0]
    if len({bool(r.header.get("gyro", True)) for r in recs}) > 1:
        raise RecordingError("some recordings have a gyro and some do not; export them "
                             "separately")
    filled = [(r.chunk, p) for r, p in pairs if len(r.chunk)]
    for (a, pa), (b, pb) in itertools.pairwise(filled):
        if b.t[0] <= a.t[-1]:
            raise RecordingError(f"{pb} overlaps {pa} in time (another boot or session?); "
                                 "export them one by one")
    chunks = [c for c, _p in filled]
    merged = Recording(recs[0].header, SampleChunk.concat(chunks) if chunks else recs[0].chunk,
                       [e for r in recs for e in r.events], sum(r.blocks for r in recs),
                       sum(r.skipped_bytes for r in recs), any(r.torn_tail for r in recs))
    merged.notes = [n for r in recs for n in r.notes]
    return merged


def export_csv(src: str | Path | list[str | Path], out: str | Path, *,
               force: bool = True) -> tuple[int, Recording]:
    """Write the DESIGN A1 CSV (gzip when ``out`` ends in .gz; ``-`` is standard output)
    through a temporary file renamed on success; returns (rows, recording). ``src`` may be
    a list of recordings of one session, joined in time order."""
    from spinesense.outputs import atomic_output, check_output_path

    check_output_path(out, force=force)
    rec = read_many(src if isinstance(src, list) else [src])
    out = Path(out)
    c = rec.chunk
    cols = [c.t[:, None], c.acc]
    if c.gyro is not None:
        cols.append(c.gyro)
        fmt = "%.6f,%.6f,%.6f,%.6f,%.5f,%.5f,%.5f,%d"
    else:
        fmt = "%.6f,%.6f,%.6f,%.6f,,,,%d"
    sat = np.zeros(len(c), bool) if c.saturated is None else c.saturated
    cols.append(sat[:, None].astype(float))
    table = np.hstack(cols) if len(c) else np.zeros((0, len(cols)))
    try:
        with atomic_output(out, force=force, binary=True) as raw:
            z = (gzip.GzipFile(filename=out.name, fileobj=raw, mode="wb")
                 if out.name.endswith(".gz") else None)
            fh = io.TextIOWrapper(raw if z is None else z, "utf-8", newline="\n")
            fh.write(CSV_HEADER + "\n")
            np.savetxt(fh, table, fmt=fmt)
            fh.flush()
            fh.detach()  # leave `raw` (perhaps standard output) open
            if z is not None:
                z.close()
    except BrokenPipeError:
        raise  # `record export F -o - | head`: the reader left, nothing to report
    except OSError as exc:
        raise RecordingError(f"{out}: cannot write ({exc.strerror})") from None
    return len(c), rec


RECORDING_SUFFIXES = (".csv.gz", ".csv", ".ssrec", ".gz")


def beside_recording(recording: str | Path, suffix: str) -> Path:
    """A file that belongs to a recording, next to it: ``day.csv.gz`` or ``day.ssrec`` with
    ``.truth.json`` gives ``day.truth.json`` (truth, feedback sidecars)."""
    path = Path(recording)
    name = path.name
    for ending in RECORDING_SUFFIXES:
        if name.endswith(ending):
            name = name[: -len(ending)]
            break
    return path.with_name(name + suffix)

