"""A throwaway PostgreSQL server on the loopback address, for the tests of a sweep shared between processes.

The cluster is made with initdb by an unprivileged user (initdb and postgres refuse root), listens on 127.0.0.1 at a
free port with its unix socket beside its data, and is stopped with `pg_ctl stop -m immediate`: nothing in it is
worth a clean shutdown. Anything missing (no server binaries, no psycopg2, a refused start) is a `PostgresUnavailable`
with one line that says why, which the fixture turns into a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

UNPRIVILEGED = "nobody"
DATABASE = "sweeps"
START_DEADLINE_S = 60.0


class PostgresUnavailable(Exception):
    """No server can be had here; the message is the reason a test is skipped."""


@dataclass(frozen=True)
class Server:
    url: str  # what `--storage` and Optuna's RDBStorage take (SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3)
    host: str
    port: int
    user: str
    database: str
    log: Path


def find_binaries() -> Path:
    """The folder holding initdb and pg_ctl: the newest Debian/Ubuntu versioned folder, else the PATH's."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for folder in folders:
        if all(os.access(Path(folder) / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise PostgresUnavailable("PostgreSQL's initdb and pg_ctl were not found (apt-get install postgresql)")


def _version_key(folder: str) -> int:
    version = Path(folder).parent.name
    return int(version) if version.isdigit() else 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def cluster_folder(tmp_path: Path) -> Iterator[tuple[Path, str | None]]:
    """(folder, user to run the server as). As root the server runs as `nobody`, which cannot pass pytest's 0700
    temporary folder: the cluster then lives in a folder of its own, made for it and removed after."""
    if os.geteuid() != 0:
        yield tmp_path, None
        return
    try:
        owner = pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        raise PostgresUnavailable(f"no unprivileged user {UNPRIVILEGED!r} to run PostgreSQL as (it refuses root)")
    folder = Path(tempfile.mkdtemp(prefix="tc-postgres-"))
    try:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        yield folder, UNPRIVILEGED
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(command: list[str], user: str | None, timeout: float) -> subprocess.CompletedProcess:
    extra = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd="/", **extra)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def init_cluster(bin_dir: Path, data: Path, user: str | None) -> str:
    """initdb with trust for local connections; returns the database superuser's name."""
    superuser = user or pwd.getpwuid(os.geteuid()).pw_name
    done = _run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", superuser, "-A", "trust", "-E", "UTF8", "--no-sync"],
        user,
        timeout=120,
    )
    if done.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {_last_line(done.stderr or done.stdout)}")
    return superuser


def start_server(bin_dir: Path, data: Path, sockets: Path, user: str | None) -> tuple[int, Path]:
    """(port, log): pg_ctl start without its own wait (the caller polls); a port taken between the probe and the
    server's bind is tried anew, with a log of its own."""
    for attempt in range(3):
        port, log = free_port(), data.parent / f"server-{attempt}.log"
        options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=50"
        done = _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-W", "-o", options, "start"], user, 60)
        if done.returncode != 0:
            raise PostgresUnavailable(f"pg_ctl start failed: {_last_line(done.stderr or done.stdout)}")
        if _wait_accepting(port, user_name(user), log):
            return port, log
    raise PostgresUnavailable(f"PostgreSQL did not start: {_last_line(_read(log))}")


def user_name(user: str | None) -> str:
    return user or pwd.getpwuid(os.geteuid()).pw_name


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _wait_accepting(port: int, user: str, log: Path) -> bool:
    """True once a connection succeeds; False when the server's log says the port was taken."""
    import psycopg2

    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres", connect_timeout=5).close()
            return True
        except psycopg2.OperationalError as error:
            text = _read(log)
            if "could not bind" in text or "Address already in use" in text:
                return False
            if _fatal(text) or time.monotonic() > deadline:
                why = _fatal(text) or _last_line(str(error))
                raise PostgresUnavailable(f"PostgreSQL accepted no connection: {why}")
        time.sleep(0.1)  # the polling interval, not a wait for something to happen


def _fatal(log_text: str) -> str:
    """The first line saying the server gave up; refused connections while it starts up do not count."""
    for line in log_text.splitlines():
        if ("FATAL" in line or "PANIC" in line) and "starting up" not in line:
            return line.strip()
    return ""


def create_database(port: int, user: str, name: str) -> None:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres", connect_timeout=10)
    try:
        connection.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def stop_server(bin_dir: Path, data: Path, user: str | None) -> None:
    _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-W", "stop"], user, timeout=60)


@contextlib.contextmanager
def postgres_server(tmp_path: Path) -> Iterator[Server]:
    """A running server with an empty database; raises PostgresUnavailable (before yielding) when none can be had."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg2 is not installed (pip install psycopg2-binary)")
    bin_dir = find_binaries()
    with cluster_folder(tmp_path) as (folder, user), contextlib.ExitStack() as cleanup:
        data, sockets = folder / "data", folder / "sockets"
        sockets.mkdir()
        if user is not None:
            owner = pwd.getpwnam(user)
            os.chown(sockets, owner.pw_uid, owner.pw_gid)
        superuser = init_cluster(bin_dir, data, user)
        cleanup.callback(stop_server, bin_dir, data, user)
        port, log = start_server(bin_dir, data, sockets, user)
        create_database(port, superuser, DATABASE)
        url = f"postgresql+psycopg2://{superuser}@127.0.0.1:{port}/{DATABASE}"
        yield Server(url=url, host="127.0.0.1", port=port, user=superuser, database=DATABASE, log=log)
