"""A plain (non-editable) install carries every subpackage the folders map to."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_and_runs_from_its_own_files(tmp_path: Path) -> None:
    # build from a copy: setuptools leaves a build/ folder in the source tree
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "work", "build", "*.egg-info", "__pycache__", ".*_cache"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, cwd=tmp_path, timeout=300)
    wheel = next((tmp_path / "dist").glob("spinesense-*.whl"))
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    code = ("import spinesense, spinesense.firmware.reader, spinesense.edge.pipeline, "
            "spinesense.collector.service, spinesense.analysis.report; "
            "print(spinesense.__file__)")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target)), out.stdout
    helped = subprocess.run([sys.executable, "-m", "spinesense", "--help"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert helped.returncode == 0 and "replay" in helped.stdout
    assert (target / "bin" / "spinesense").exists()
