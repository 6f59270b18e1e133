"""InfluxDB writers: plain 1.x ``/write`` and influxdb-client for 2.x/3.x/1.8+.

Both take a list of line-protocol lines (ms precision) and either succeed or raise:

- ``RetryableError``: the server or network failed (5xx, refused, timeout); the same batch
  is written again after a backoff. Writes are idempotent (deterministic point identity),
  so retrying a batch that was in fact stored is harmless.
- ``AuthError``: 401/403, a configuration problem; retried slowly and logged loudly, so a
  wrong token loses nothing but is impossible to miss.
- ``PermanentError``: the server refused the data itself (400 parse error, field type
  conflict, 413 too large), or the batch could not even be encoded (a string that is not
  valid Unicode). ``write_isolating`` then splits the batch to find the bad points, so
  that only they are dead-lettered.

Every other exception raised while encoding or writing a batch is classified as
permanent too (``classify``): only a transient server or network failure is retried, so
no message can make the collector retry forever.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlencode

import urllib3

from spinesense.config import InfluxConfig

log = logging.getLogger(__name__)


class WriteError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RetryableError(WriteError):
    """Try the same batch again later."""


class AuthError(RetryableError):
    """401/403: credentials or permissions are wrong. Retried, and logged as an error."""


class PermanentError(WriteError):
    """The data was refused; writing it again cannot succeed."""


class Writer(Protocol):
    def write(self, lines: list[str]) -> None: ...
    def close(self) -> None: ...


def _classify(status: int, body: str, what: str) -> WriteError:
    text = body.strip().replace("\n", " ")[:300]
    if status in (401, 403):
        return AuthError(f"{what}: {status} not authorised ({text}); check the InfluxDB "
                         "user/password or token in [influx]", status)
    if status == 404:  # database/bucket missing: a setup problem, not bad data
        return AuthError(f"{what}: 404 {text}; create the database/bucket or fix [influx]",
                         status)
    if status == 429 or status >= 500:
        return RetryableError(f"{what}: {status} {text}", status)
    return PermanentError(f"{what}: {status} {text}", status)


class InfluxV1Writer:
    """``POST /write?db=..&precision=ms`` (InfluxDB 1.x, also 1.8+ and 2.x's 1.x API).

    Creates the database when it is missing (needs the admin right for that when auth
    is on). One pooled keep-alive connection; the timeout bounds every request.
    """

    def __init__(self, cfg: InfluxConfig):
        self.cfg = cfg
        self.base = cfg.url.rstrip("/")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if cfg.username:
            token = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self.http = urllib3.PoolManager(
            num_pools=2, maxsize=2, headers=headers, retries=False,
            timeout=urllib3.Timeout(connect=min(cfg.timeout_s, 5.0), read=cfg.timeout_s))
        self.params = {"db": cfg.database, "precision": "ms"}
        if cfg.retention_policy:
            self.params["rp"] = cfg.retention_policy
        self.write_url = f"{self.base}/write?{urlencode(self.params)}"
        self._db_ready = False

    def _request(self, method: str, url: str, body: bytes,
                 headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        try:
            return self.http.request(method, url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(f"InfluxDB at {self.base} unreachable: "
                                 f"{type(exc).__name__}: {exc}") from None

    def ensure_database(self) -> None:
        """CREATE DATABASE is idempotent in InfluxQL; done once, and again on a 404.
        Failing to create it is a setup problem, never the data's fault: retryable."""
        q = urlencode({"q": f'CREATE DATABASE "{self.cfg.database}"'}).encode()
        form = {**self.http.headers, "Content-Type": "application/x-www-form-urlencoded"}
        resp = self._request("POST", f"{self.base}/query", q, form)
        body = resp.data.decode("utf-8", "replace")
        what = f"creating database {self.cfg.database!r}"
        if resp.status != 200:
            err = _classify(resp.status, body, what)
            raise err if isinstance(err, RetryableError) else AuthError(str(err), resp.status)
        err = next((r["error"] for r in json.loads(body or "{}").get("results", [])
                    if "error" in r), None)
        if err:
            raise AuthError(f"{what}: {err}")
        self._db_ready = True

    def write(self, lines: list[str]) -> None:
        body = encode_batch(lines)
        if not self._db_ready:
            self.ensure_database()
        resp = self._request("POST", self.write_url, body=body)
        if resp.status == 204:
            return
        text = resp.data.decode("utf-8", "replace")
        if resp.status == 404 and "database not found" in text:
            self._db_ready = False  # dropped behind our back: create it and retry
            raise RetryableError(f"database {self.cfg.database!r} not found; creating it",
                                 404)
        raise _classify(resp.status, text, "InfluxDB /write")

    def close(self) -> None:
        self.http.clear()


class InfluxV2Writer:
    """influxdb-client's synchronous WriteApi (InfluxDB 2.x, 3.x, 1.8+ with a DBRP)."""

    def __init__(self, cfg: InfluxConfig):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.cfg = cfg
        self.client = InfluxDBClient(url=cfg.url, token=cfg.token or None, org=cfg.org,
                                     timeout=int(cfg.timeout_s * 1000))
        self.api = self.client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        body = encode_batch(lines)
        try:
            self.api.write(bucket=self.cfg.bucket, org=self.cfg.org, record=body,
                           write_precision=WritePrecision.MS)
        except ApiException as exc:
            raise _classify(exc.status or 0, str(exc.body or exc.reason),
                            "InfluxDB v2 write") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryableError(f"InfluxDB at {self.cfg.url} unreachable: "
                                 f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.client.close()


def encode_batch(lines: list[str]) -> bytes:
    """The request body; a line that is not valid Unicode (a lone surrogate) is the data's
    fault, never the server's: PermanentError."""
    try:
        return "\n".join(lines).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PermanentError(f"a point cannot be encoded as UTF-8 ({exc.reason} at "
                             f"{exc.start})") from None


def classify(exc: Exception) -> WriteError:
    """Any error from a write as a WriteError: retryable only if the writer said so."""
    if isinstance(exc, WriteError):
        return exc
    return PermanentError(f"{type(exc).__name__}: {str(exc)[:300]}")


def make_writer(cfg: InfluxConfig) -> Writer:
    return InfluxV1Writer(cfg) if cfg.api == "v1" else InfluxV2Writer(cfg)


def write_isolating(write: Callable[[list[str]], None], lines: list[str],
                    on_bad: Callable[[int, str], Any]) -> None:
    """Write ``lines``; on any error but a RetryableError split the batch in halves until
    each refused line is alone, and report it with ``on_bad(index, reason)``. Good lines
    are (re)written: identity is deterministic, so rewriting a point that landed in a
    partial write is harmless. RetryableError propagates (the caller backs off and calls
    again, leaving out the lines already reported)."""
    stack: list[tuple[int, int]] = [(0, len(lines))]
    while stack:
        lo, hi = stack.pop()
        try:
            write(lines[lo:hi])
        except Exception as exc:  # classified: only outages are retried
            err = classify(exc)
            if isinstance(err, RetryableError):
                raise err from None
            if hi - lo == 1:
                on_bad(lo, str(err))
            else:
                mid = (lo + hi) // 2
                stack.append((mid, hi))
                stack.append((lo, mid))
