"""A throwaway OpenSSH server on 127.0.0.1 for end-to-end tests through a real SSH session.

`sshd_server` (a module-scoped fixture) starts `/usr/sbin/sshd -D -e` on a free loopback port with a host key and
a client key made for the test, and stops it at the end. Where sshd is missing it installs openssh-server with apt
(CI runs as root on a fresh machine); where that is not possible the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without its privilege separation directory
APT_TIMEOUT_S = 120
START_TIMEOUT_S = 20


@dataclass
class SshServer:
    port: int
    client_key: Path
    log: Path

    def command(self, remote: str) -> list[str]:
        """The ssh client, with a forced terminal (`-t -t`), that runs `remote` through root's shell."""
        return [
            "ssh",
            "-t",
            "-t",
            "-i",
            str(self.client_key),
            "-p",
            str(self.port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            "-F",
            "/dev/null",
            "root@127.0.0.1",
            remote,
        ]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _install_openssh() -> str | None:
    """None once sshd and ssh are there, else why they are not."""
    if SSHD.exists() and shutil.which("ssh") and shutil.which("ssh-keygen"):
        return None
    if os.geteuid() != 0:
        return f"{SSHD} is missing and installing openssh-server needs root"
    if shutil.which("apt-get") is None:
        return f"{SSHD} is missing and there is no apt-get to install openssh-server"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server", "openssh-client"]
    try:
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        if done.returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        return f"`{' '.join(e.cmd)}` took more than {APT_TIMEOUT_S} s"
    if done.returncode != 0 or not SSHD.exists():
        return f"apt-get install openssh-server failed ({done.returncode}): {done.stderr.strip()[-500:]}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "trainconsole-e2e", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _config(folder: Path, port: int) -> Path:
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                f"PidFile {folder / 'sshd.pid'}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin yes",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PrintMotd no",
                "PrintLastLog no",
                "LogLevel INFO",
                "",
            ]
        )
    )
    return config


def _start(folder: Path) -> tuple[subprocess.Popen, SshServer] | str:
    """sshd listening on a free port, or why it would not start (a port taken in between is tried again)."""
    log = folder / "sshd.log"
    why = ""
    for _ in range(3):
        port = _free_port()
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(_config(folder, port))],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if _accepts(port):
                return proc, SshServer(port, folder / "client_key", log)
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        logged = log.read_text(errors="replace")[-500:]
        why = f"sshd did not listen on 127.0.0.1:{port} (exit {proc.returncode}): {logged}"
    return why


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory):
    """A running sshd on 127.0.0.1 that lets root in with a throwaway key; the tests are skipped where none can run."""
    why = _install_openssh()
    if why is not None:
        pytest.skip(f"sshd not available: {why}")
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    folder = tmp_path_factory.mktemp("sshd")
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    started = _start(folder)
    if isinstance(started, str):
        pytest.skip(f"sshd not available: {started}")
    proc, server = started
    probe = subprocess.run(
        [a for a in server.command("true") if a != "-t"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        proc.kill()
        proc.wait()
        pytest.fail(
            f"sshd runs but `ssh root@127.0.0.1 true` failed ({probe.returncode}): "
            f"{probe.stderr.strip()} {server.log_text()[-500:]}"
        )
    try:
        yield server
    finally:
        proc.terminate()  # the listener only: each connection's own sshd ends with its connection
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
