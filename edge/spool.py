"""The durable outbox between the pipeline and MQTT: SQLite in WAL mode.

Every event and metric is committed here, with its sequence number, *before* it is handed
to MQTT, and it is deleted only once the collector confirms it is stored (``confirm``: the
collector's stored mark), not at the broker's PUBACK: a broker may acknowledge a message
and still lose it. (``ack``, delete on PUBACK, is kept for ``spool.delete_on = "puback"``.)
So:

* a broker or collector outage only grows the backlog, replayed in seq order afterwards;
* a crash or power cut at any instant loses nothing committed: ``synchronous=FULL``
  fsyncs the WAL at every commit. (``NORMAL`` in WAL mode survives a process crash but
  can roll back the last commits on power loss; a message that had already been
  published would then reappear under a reused seq with different content, which is
  the one thing the collector's dedupe-by-identity cannot repair.) The cost is one
  fsync per *batch*: the live loop commits what one sensor read produced in one
  transaction (see bench/bench_edge_service.py for the price per event);
* a power cut between the confirmation and the delete only means the message is sent
  again with the same seq: a duplicate the collector overwrites (same tags and timestamp).

The seq counter lives in the same database (``meta.last_seq``), updated in the same
transaction as the rows, so it survives restarts and never repeats. Disk use is bounded
by payload bytes: past ``max_mb`` the oldest metrics go; events are dropped (oldest
first, logged at ERROR and counted in ``dropped_events``) only past ``hard_cap_mb``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spinesense import schema

log = logging.getLogger(__name__)

ROW_OVERHEAD = 48  # bytes per row beyond the payload (key, kind, b-tree cell), measured
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,      -- the message's per-device sequence number
    kind TEXT NOT NULL,           -- events | metrics
    payload TEXT NOT NULL,        -- the encoded JSON message
    mono REAL                     -- monotonic time, while its stamp awaits clock sync
);
"""


class Spool:
    """A crash-safe, size-bounded FIFO of wire messages keyed by seq."""

    def __init__(self, path: str | Path, *, max_mb: float = 50.0, hard_cap_mb: float = 200.0,
                 synchronous: str = "FULL"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_mb * 1e6)
        self.hard_cap_bytes = int(hard_cap_mb * 1e6)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.synchronous = synchronous
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(_SCHEMA)
        last = self._meta("last_seq")
        top = self.db.execute("SELECT max(seq) FROM outbox").fetchone()[0] or 0
        self.next_seq = max(last, top) + 1
        self.count, payload = self.db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox").fetchone()
        self.bytes = payload + self.count * ROW_OVERHEAD
        self.dropped_events = self._meta("dropped_events")
        self.dropped_metrics = self._meta("dropped_metrics")
        # a row stamped before sync may have been sent by an earlier run: never re-stamp it
        self.db.execute("UPDATE outbox SET mono = NULL WHERE mono IS NOT NULL")
        if self.count:
            log.info("spool %s: %d messages waiting (seq from %d)", self.path, self.count,
                     self.first_seq())

    def _meta(self, key: str) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def add(self, items: Iterable[tuple[str, dict[str, Any], float | None]]) -> list[int]:
        """Give each (kind, message, mono-or-None) the next seq and commit them together.

        ``mono`` is set for messages stamped before clock sync (see ``restamp``). Returns
        the seqs; once this returns, the messages survive a power cut.
        """
        rows = []
        seq = self.next_seq
        for kind, msg, mono in items:
            if kind not in ("events", "metrics"):
                raise ValueError(f"spool kind {kind!r}: only events and metrics are spooled")
            msg["seq"] = seq
            rows.append((seq, kind, schema.encode(msg).decode(), mono))
            seq += 1
        if not rows:
            return []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO outbox(seq, kind, payload, mono) "
                                "VALUES (?, ?, ?, ?)", rows)
            self._set_meta("last_seq", seq - 1)
            self.count += len(rows)
            self.bytes += sum(len(r[2]) + ROW_OVERHEAD for r in rows)
            if self.bytes > self.max_bytes:
                self._enforce_budget()
        self.next_seq = seq
        return [r[0] for r in rows]

    def _drop_oldest(self, kind: str, limit_bytes: int) -> int:
        """Delete just enough of the oldest ``kind`` rows to get under ``limit_bytes``."""
        dropped = 0
        while self.bytes > limit_bytes:
            need = self.bytes - limit_bytes
            victims, freed = [], 0
            for seq, size in self.db.execute(
                    "SELECT seq, length(payload) FROM outbox WHERE kind = ? ORDER BY seq "
                    "LIMIT 1000", (kind,)):
                victims.append(seq)
                freed += size + ROW_OVERHEAD
                if freed >= need:
                    break
            if not victims:
                break
            self.db.execute(f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(victims))})",
                            victims)
            dropped += len(victims)
            self.count -= len(victims)
            self.bytes -= freed
        return dropped

    def _enforce_budget(self) -> None:
        """Inside add()'s transaction: metrics first, events only past the hard cap."""
        n = self._drop_oldest("metrics", self.max_bytes)
        if n:
            self.dropped_metrics += n
            self._set_meta("dropped_metrics", self.dropped_metrics)
            log.warning("spool over its %.1f MB budget: dropped the %d oldest metrics "
                        "(%d so far)", self.max_bytes / 1e6, n, self.dropped_metrics)
        if self.bytes > self.hard_cap_bytes:
            n = self._drop_oldest("events", self.hard_cap_bytes)
            self.dropped_events += n
            self._set_meta("dropped_events", self.dropped_events)
            log.error("SPOOL HARD CAP %.1f MB HIT: dropped the %d oldest EVENTS (%d so "
                      "far); the broker has been unreachable for too long",
                      self.hard_cap_bytes / 1e6, n, self.dropped_events)

    def fetch(self, after_seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        """The next ``limit`` messages with seq > after_seq, in seq order."""
        rows = self.db.execute("SELECT seq, kind, payload FROM outbox WHERE seq > ? "
                               "ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [(s, k, p.encode()) for s, k, p in rows]

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete these messages (one transaction); returns how many were present."""
        seqs = list(seqs)
        parts = [seqs[i:i + 500] for i in range(0, len(seqs), 500)]
        return self._delete([(f"seq IN ({','.join('?' * len(p))})", p) for p in parts])

    def confirm(self, mark: int) -> int:
        """Storage confirmed every seq up to ``mark``: delete them; returns how many."""
        return self._delete([("seq <= ?", [mark])])

    def _delete(self, wheres: list[tuple[str, list[int]]]) -> int:
        if not wheres:
            return 0
        # A delete lost to a power cut only re-sends a message under the same seq (the
        # collector dedupes it), so deletes skip the fsync; the next insert's FULL commit
        # syncs the WAL, deletes included.
        self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                gone = []
                for where, args in wheres:
                    gone += self.db.execute(f"DELETE FROM outbox WHERE {where} "
                                            "RETURNING length(payload)", args).fetchall()
        finally:
            self.db.execute(f"PRAGMA synchronous={self.synchronous}")
        self.count -= len(gone)
        self.bytes -= sum(n for (n,) in gone) + len(gone) * ROW_OVERHEAD
        return len(gone)

    def prev_seq(self, seq: int) -> int:
        """The next lower seq still held, or 0: every seq between is settled."""
        return self.db.execute("SELECT coalesce(max(seq), 0) FROM outbox WHERE seq < ?",
                               (seq,)).fetchone()[0]

    def count_upto(self, seq: int) -> int:
        """How many messages with seq <= ``seq`` are still held."""
        return self.db.execute("SELECT count(*) FROM outbox WHERE seq <= ?",
                               (seq,)).fetchone()[0]

    def restamp(self, to_ms: Callable[[float], int], after_seq: int) -> int:
        """Clock sync arrived: re-stamp unsent messages (seq > after_seq) from their
        monotonic time and drop their ``synced: false``. Returns how many were fixed."""
        rows = self.db.execute("SELECT seq, payload, mono FROM outbox WHERE mono IS NOT NULL "
                               "AND seq > ?", (after_seq,)).fetchall()
        updates = []
        for seq, payload, mono in rows:
            msg = json.loads(payload)
            delta = to_ms(mono) - msg["ts"]
            msg["ts"] += delta
            for key in schema.TIME_KEYS:
                if isinstance(msg["data"].get(key), int):
                    msg["data"][key] += delta
            msg.pop("synced", None)
            updates.append((schema.encode(msg).decode(), seq))
            self.bytes += len(updates[-1][0]) - len(payload)
        if updates:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("UPDATE outbox SET payload = ?, mono = NULL WHERE seq = ?",
                                    updates)
            log.info("clock synced: re-stamped %d spooled messages", len(updates))
        return len(updates)

    def first_seq(self) -> int | None:
        return self.db.execute("SELECT min(seq) FROM outbox").fetchone()[0]

    @property
    def backlog(self) -> int:
        return self.count

    def stats(self) -> dict[str, int]:
        return {"backlog": self.count, "bytes": self.bytes, "next_seq": self.next_seq,
                "dropped_events": self.dropped_events,
                "dropped_metrics": self.dropped_metrics}

    def close(self) -> None:
        self.db.close()
