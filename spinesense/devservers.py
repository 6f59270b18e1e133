"""Private Mosquitto and InfluxDB 1.x servers on free loopback ports.

Used by the tests, the benchmarks and `make demo`: each server runs from a config file
in its own folder, is waited for until ready, and is stopped by the process we started
(never by name). Both are restartable on the same port, so tests can cut them off.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


class ServerError(RuntimeError):
    """A server binary is missing or did not become ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if not path:
        raise ServerError(f"`{name}` not found: install it with `sudo apt-get install "
                          f"{package}` (or run `make setup`)")
    return path


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"server exited with {proc.returncode}: "
                              f"{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerError(f"port {port} not ready after {timeout}s; see {log}")


class _Server:
    """A child process with a log file; start/stop/kill are idempotent."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "server.log"

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        log = self.log_path.open("ab")
        try:
            # own process group, so a Ctrl-C in the terminal reaches us, not the server
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: an abrupt crash, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        self.start()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Mosquitto(_Server):
    """`mosquitto -c FILE` on 127.0.0.1:port; ``extra`` lines are appended to the config."""

    def __init__(self, workdir: Path, port: int | None = None, extra: str = "",
                 anonymous: bool = True):
        super().__init__(workdir)
        self.binary = require_binary("mosquitto", "mosquitto")
        self.port = port or free_port()
        self.conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            # as root, mosquitto would drop to the mosquitto user and lose our temp files
            "user root" if os.geteuid() == 0 else "",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            "max_queued_messages 1000000",
            "max_inflight_messages 1000",
            "log_type error",
            "log_type warning",
            "log_type notice",
            extra,
        ]
        self.conf.write_text("\n".join(x for x in lines if x) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if not self.running:
            self.proc = self._spawn([self.binary, "-c", str(self.conf)])
            _wait_port(self.port, self.proc, timeout, self.log_path)
        return self


class InfluxD(_Server):
    """InfluxDB 1.x `influxd -config FILE`, ready when GET /ping answers 204."""

    def __init__(self, workdir: Path, port: int | None = None):
        super().__init__(workdir)
        self.binary = require_binary("influxd", "influxdb")
        self.port = port or free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = self.workdir / "influxdb.conf"
        d = self.workdir
        self.conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"
[coordinator]
  write-timeout = "30s"
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
""")

    def start(self, timeout: float = 30.0) -> InfluxD:
        if not self.running:
            self.proc = self._spawn([self.binary, "-config", str(self.conf)])
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    raise ServerError(f"influxd exited with {self.proc.returncode}: "
                                      f"{self.log_path.read_text(errors='replace')[-2000:]}")
                if self.ping():
                    break
                if time.monotonic() > deadline:
                    raise ServerError(f"influxd not ready after {timeout}s; see {self.log_path}")
                time.sleep(0.1)
        return self

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1) as r:
                return r.status == 204
        except (OSError, urllib.error.URLError):
            return False

    def query(self, q: str, db: str | None = None, epoch: str = "ms") -> list[dict[str, Any]]:
        """Run InfluxQL through /query; returns the statement results (raises on error)."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(self.url + "/query", data=data, timeout=60) as r:
            body = json.loads(r.read())
        results = body.get("results", [])
        for res in results:
            if "error" in res:
                raise ServerError(f"InfluxQL error: {res['error']} in {q!r}")
        return results

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """The first statement's rows as dicts (all series concatenated, tags merged in)."""
        out: list[dict[str, Any]] = []
        for series in self.query(q, db)[0].get("series", []):
            tags = series.get("tags", {})
            for values in series["values"]:
                out.append({**tags, **dict(zip(series["columns"], values, strict=True))})
        return out

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')
