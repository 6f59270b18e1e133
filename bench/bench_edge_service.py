"""Edge service resources: CPU % and peak RSS of `edge run`, and the spool's cost per event.

    .venv/bin/python bench/bench_edge_service.py [--seconds 60] [--events 2000]

1. `spinesense edge run --emulate mpu6050 --scenario mixed` in real time (100 Hz) for
   ``--seconds`` against a private Mosquitto: CPU % of one core and peak RSS (VmHWM),
   against the DESIGN B5 budget of 80 MB.
2. The spool's write cost per event, all in the same run on the same disk:
   - the spool as the live loop uses it (WAL, synchronous=FULL, one commit per tick);
   - baseline: a naive per-message commit in SQLite's default rollback journal with
     synchronous=FULL (what a first attempt would do);
   - for reference: the spool at synchronous=NORMAL (not power-cut safe; see spool.py).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from spinesense import schema
from spinesense.devservers import Mosquitto
from spinesense.edge.spool import Spool

EXE = [sys.executable, "-m", "spinesense"]


def _event(i: int) -> dict:
    return schema.make_message("bench", 0, 1_700_000_000_000 + i, "slouch_start",
                               {"onset": 1_700_000_000_000 + i - 5000, "peak_deg": 21.5})


def spool_cost(folder: Path, n: int, per_commit: int, synchronous: str) -> float:
    """Microseconds per event for Spool.add in batches of ``per_commit``."""
    spool = Spool(folder / f"spool-{per_commit}-{synchronous}.db", synchronous=synchronous)
    t0 = time.perf_counter()
    for i in range(0, n, per_commit):
        spool.add([("events", _event(j), None) for j in range(i, i + per_commit)])
    dt = time.perf_counter() - t0
    spool.close()
    return dt / n * 1e6


def naive_cost(folder: Path, n: int) -> float:
    """Baseline: rollback journal, synchronous=FULL, one INSERT + commit per message."""
    db = sqlite3.connect(folder / "naive.db")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE m (seq INTEGER PRIMARY KEY, kind TEXT, payload TEXT)")
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("INSERT INTO m VALUES (?, ?, ?)",
                   (i + 1, "events", schema.encode(_event(i)).decode()))
        db.commit()
    dt = time.perf_counter() - t0
    db.close()
    return dt / n * 1e6


def edge_run(folder: Path, seconds: float) -> tuple[float, float, float, float]:
    """(steady and overall CPU % of one core, peak RSS MB, wall s) of a real-time run."""
    with Mosquitto(folder / "mosquitto") as broker:
        cfg = folder / "edge.toml"
        cfg.write_text(f'[device]\nid = "bench"\nstate_dir = "{folder / "state"}"\n'
                       f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
                       '[spool]\ndelete_on = "puback"\n')  # no collector to confirm
        t0 = time.monotonic()
        proc = subprocess.Popen([*EXE, "edge", "run", "-c", str(cfg), "--emulate", "mpu6050",
                                 "--scenario", "mixed", "--duration", f"{seconds:g}"],
                                stderr=(folder / "edge.log").open("wb"))
        ps = psutil.Process(proc.pid)
        peak_kb, samples = 0, []  # (wall s, cpu s)
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            peak_kb = max(peak_kb, int(line.split()[1]))
                times = ps.cpu_times()
                samples.append((time.monotonic() - t0, times.user + times.system))
            except (OSError, psutil.Error):
                pass
            time.sleep(0.2)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            raise SystemExit(f"edge run failed ({proc.returncode}); see {folder / 'edge.log'}")
    # steady state: from 10 s in (imports and the simulated person are built) to the end
    start = next(s for s in samples if s[0] >= min(10.0, seconds / 3))
    end = samples[-1]
    steady = 100.0 * (end[1] - start[1]) / (end[0] - start[0])
    total = 100.0 * end[1] / end[0]
    return steady, total, peak_kb / 1024, wall


def import_floor(modules: str) -> float:
    """Peak RSS (MB) of a Python that only imports ``modules``: what the edge cannot
    go below whatever it does itself."""
    code = (f"import resource, {modules}; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return int(out.stdout) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="edge run length (real time)")
    ap.add_argument("--events", type=int, default=2000, help="events per spool measurement")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-edge-", dir=os.getcwd()) as tmp:
        folder = Path(tmp)
        n = args.events
        naive = naive_cost(folder, n)
        one = spool_cost(folder, n, 1, "FULL")
        tick = spool_cost(folder, n, 10, "FULL")
        normal = spool_cost(folder, n, 1, "NORMAL")
        print(f"spool write cost per event ({n} events, this disk):")
        print(f"  baseline: naive commit per message, rollback journal, FULL: {naive:8.1f} us")
        print(f"  spool, WAL + FULL, one event per commit:                   {one:8.1f} us"
              f"  ({naive / one:.1f}x faster than baseline)")
        print(f"  spool, WAL + FULL, 10 per commit (a busy tick):            {tick:8.1f} us"
              f"  ({naive / tick:.1f}x faster than baseline)")
        print(f"  reference: WAL + NORMAL (not power-cut safe), one per commit: {normal:5.1f} us")
        steady, total, rss, wall = edge_run(folder, args.seconds)
        print(f"edge run, emulated MPU-6050 at 100 Hz, real time, {args.seconds:g} s "
              f"({wall:.0f} s wall incl. start and drain):")
        print(f"  CPU: {steady:.1f} % of one core in steady state ({total:.1f} % including "
              "start-up)")
        print(f"  peak RSS: {rss:.1f} MB  (budget 80 MB: {rss / 80:.2f}x of it)")
        numpy_mb = import_floor("numpy")
        floor = import_floor("numpy, scipy.signal")
        print(f"  floor: python + numpy {numpy_mb:.1f} MB, + scipy.signal {floor:.1f} MB "
              f"(the pipeline's filters); edge run above that floor: {rss - floor:.1f} MB")


if __name__ == "__main__":
    main()
