"""`spinesense demo` (what `make demo` runs), shortened: summary, report, nothing left running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil


def _children_using(workdir: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(workdir) in cmd and "pytest" not in cmd:
            found.append(cmd)
    return found


def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    res = subprocess.run([sys.executable, "-m", "spinesense", "demo", "--workdir", str(workdir),
                          "--scenario", "mixed", "--duration", "20m", "--speed", "300"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    points = re.search(r"points written\s+(\d+) \((\d+) metrics, (\d+) events\)", res.stdout)
    assert points, res.stdout
    assert int(points[2]) > 100 and int(points[3]) > 3
    assert re.search(r"slouch episodes\s+[1-9]", res.stdout), res.stdout
    report = workdir / "report.html"
    assert report.exists() and report.stat().st_size > 20_000
    assert "data:image/png;base64," in report.read_text()
    assert _children_using(workdir) == []
