"""Shared fixtures: real mosquitto and influxd on free loopback ports.

A missing binary fails the test loudly (ServerError names the apt package); nothing
skips silently. Session-scoped servers are shared; tests isolate themselves by using
their own device ids and database names (see ``unique_db``). Tests that stop or kill a
server use the factories, which give them private instances.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinesense.devservers import InfluxD, Mosquitto

_counter = itertools.count()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxD]:
    with InfluxD(tmp_path_factory.mktemp("influxd")) as server:
        yield server


def _private_servers(cls: type, workdir: Path) -> Iterator:
    """A factory of private server instances, all stopped when the test ends."""
    started: list = []

    def make(**kwargs):
        server = cls(workdir / f"{cls.__name__.lower()}{len(started)}", **kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator:
    """Private brokers a test may kill and restart: factory(extra="", anonymous=True)."""
    yield from _private_servers(Mosquitto, tmp_path)


@pytest.fixture
def influxd_factory(tmp_path: Path) -> Iterator:
    """Private influxd instances a test may stop and restart."""
    yield from _private_servers(InfluxD, tmp_path)


@pytest.fixture
def unique_db(influxd: InfluxD) -> str:
    """A fresh database name on the shared influxd (created)."""
    name = f"t{os.getpid()}_{next(_counter)}"
    influxd.create_database(name)
    return name


@pytest.fixture
def unique_device() -> str:
    return f"dev{os.getpid()}x{next(_counter)}"
