"""The PostgreSQL fixture says why it cannot start a server (the sweep test is then skipped with that line)."""

from __future__ import annotations

import pytest

import postgres
from postgres import PostgresUnavailable


def test_no_server_binaries_is_one_line_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no initdb on the PATH either
    with pytest.raises(PostgresUnavailable, match=r"initdb and pg_ctl were not found \(apt-get install postgresql\)"):
        postgres.find_binaries()


def test_a_server_that_gave_up_is_told_from_one_still_starting():
    starting = "LOG:  starting PostgreSQL 15\nFATAL:  the database system is starting up\n"
    assert postgres._fatal(starting) == ""
    failed = starting + 'FATAL:  could not create lock file "/x/.s.PGSQL.5432.lock": Permission denied\n'
    assert postgres._fatal(failed).startswith("FATAL:  could not create lock file")
