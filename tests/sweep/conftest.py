"""Fixtures of the sweep tests."""

from __future__ import annotations

import contextlib

import pytest

from postgres import PostgresUnavailable, postgres_server


@pytest.fixture
def postgres_url(tmp_path):
    """The URL of an empty database on a PostgreSQL server of the test's own (loopback, a free port), stopped after;
    the test is skipped, with the reason, where no server can be started."""
    with contextlib.ExitStack() as running:
        try:
            server = running.enter_context(postgres_server(tmp_path))
        except PostgresUnavailable as why:
            pytest.skip(f"no PostgreSQL server for this test: {why}")
        yield server.url
