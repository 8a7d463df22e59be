"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, pg_ctl start on a
free port, stopped and deleted afterwards.

The binaries come from PATH or Debian's postgresql package (/usr/lib/postgresql/N/bin;
.ci/run installs it when absent). PostgreSQL refuses to run as root, so under uid 0 the
server runs as the unprivileged `postgres` user (Debian's package makes it), else `nobody`,
through runuser. TINYLM_TEST_POSTGRES_URL names an existing server instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class NoServer(Exception):
    """Why no server could be started (the test skips with this reason)."""


def _bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not candidates:
        raise NoServer("no PostgreSQL binaries (pg_ctl, initdb): install Debian's postgresql package (.ci/run does)")
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> tuple[list[str], str | None]:
    """The command prefix that runs the server unprivileged, and that user's name."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise NoServer("running as root and no runuser to start PostgreSQL as an unprivileged user")
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return [runuser, "-u", user, "--"], user
    raise NoServer("running as root and no unprivileged user (postgres, nobody) to start PostgreSQL as")


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields the URL of a fresh server's `postgres` database (user tinylm, trust auth)."""
    if os.environ.get("TINYLM_TEST_POSTGRES_URL"):
        yield os.environ["TINYLM_TEST_POSTGRES_URL"]
        return
    bindir = _bindir()
    prefix, user = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="tinylm-pg-"))  # not under pytest's root-only tmp folder
    data, log, port = folder / "data", folder / "server.log", _free_port()
    if user is not None:
        shutil.chown(folder, user)
        os.chmod(folder, 0o700)
    started = False
    try:
        init = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "tinylm",
                               "--no-sync", "--no-instructions"], capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise NoServer(f"initdb failed: {(init.stderr or init.stdout).strip().splitlines()[-1:]}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log),
                                "-w", "-t", "60", "start"], capture_output=True, text=True, timeout=120)
        if start.returncode != 0:
            tail = log.read_text().strip().splitlines()[-1:] if log.exists() else start.stderr.strip().splitlines()[-1:]
            raise NoServer(f"pg_ctl start failed: {tail}")
        started = True
        yield f"postgresql://tinylm@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
