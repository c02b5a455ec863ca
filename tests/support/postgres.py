"""A PostgreSQL server for the tests (fixtures in tests/conftest.py): a private one, made by initdb in a
temporary folder and listening on a free port of 127.0.0.1 (as the `postgres` user when the tests run as
root), or an existing one named by AGENTVINE_TEST_DATABASE_URL. Each test gets its own empty database."""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from app.fakes.github.testing import free_port

DATABASE_URL_ENV = "AGENTVINE_TEST_DATABASE_URL"
SERVER_USER = "postgres"  # the OS user Debian's package creates; the server refuses to run as root
SUPERUSER = "postgres"  # the database role initdb creates, whoever runs it
ADMIN_DB = "postgres"
TEST_DB_PREFIX = "agentvine_test_"
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
TIMEOUT_S = 30
SESSION_POLL_S = 0.002
PORT_ATTEMPTS = 3  # a free port found by binding may be taken before the server binds it
# A throwaway cluster needs no durability; without it initdb, CREATE DATABASE and commits cost far less.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

NOT_INSTALLED = (f"the PostgreSQL server is not installed (no {', '.join(SERVER_TOOLS)} from pg_config --bindir, "
                 f"in {DEBIAN_BINDIRS} or on PATH): install Debian's postgresql package "
                 f"(.ci/install-postgres.sh, which ./dev setup runs) or set {DATABASE_URL_ENV}")
NO_SERVER_USER = (f"the tests run as root and there is no '{SERVER_USER}' user to run PostgreSQL as (it refuses "
                  f"root): install Debian's postgresql package, which creates it, or set {DATABASE_URL_ENV}")
NO_RUNUSER = "the tests run as root and runuser (util-linux) is missing to start PostgreSQL as another user"


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be had here: the tests that need it skip locally and fail in CI."""


class PostgresStartError(Exception):
    """The server is installed but did not start: always a failure."""


def find_bindir() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: pg_config's, else Debian's newest, else PATH's."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True)
        candidates.append(Path(out.stdout.strip()))  # libpq-dev's pg_config names it even without the server
    candidates += sorted((Path(p) for p in glob.glob(DEBIAN_BINDIRS)), key=_major_version, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    return next((c for c in candidates if all(os.access(c / tool, os.X_OK) for tool in SERVER_TOOLS)), None)


def _major_version(bindir: Path) -> int:
    name = bindir.parent.name
    return int(name) if name.isdigit() else 0


def run_as_prefix() -> tuple[list[str], pwd.struct_passwd | None]:
    """How to run the server's programs: as ourselves, or as root through runuser as the postgres user."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(NO_SERVER_USER) from None
    if shutil.which("runuser") is None:
        raise PostgresUnavailable(NO_RUNUSER)
    return ["runuser", "-u", SERVER_USER, "--"], user



@dataclass
class PrivateCluster:
    """One cluster in its own temporary folder: data/, the server's log, and its Unix socket."""

    bindir: Path
    root: Path
    prefix: list[str]
    port: int = 0
    running: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @classmethod
    def start(cls) -> PrivateCluster:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailable(NOT_INSTALLED)
        prefix, user = run_as_prefix()
        cluster = cls(bindir, Path(tempfile.mkdtemp(prefix="agentvine-pg-")), prefix)
        try:
            if user is not None:
                os.chown(cluster.root, user.pw_uid, user.pw_gid)
            cluster._initdb()
            cluster._start_on_a_free_port()
        except BaseException:
            cluster.stop()
            raise
        atexit.register(cluster.stop)  # should the session end without its fixture's finalizer
        return cluster

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        """Fast shutdown (open sessions are ended), then the folder goes; idempotent."""
        if self.running or (self.data / "postmaster.pid").exists():  # also a start that timed out
            with contextlib.suppress(PostgresStartError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(TIMEOUT_S), "stop")
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    def _initdb(self) -> None:
        # --auth=trust: local and 127.0.0.1/::1 connections need no password; --no-sync: nothing to lose.
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync")
        settings = {**SERVER_SETTINGS, "unix_socket_directories": f"'{self.root}'"}
        with (self.data / "postgresql.conf").open("a") as conf:  # stays the server user's: appended, not replaced
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))

    def _start_on_a_free_port(self) -> None:
        for attempt in range(PORT_ATTEMPTS):
            self.port = free_port()
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(TIMEOUT_S),
                          "-o", f"-p {self.port}", "start")
            except PostgresStartError:
                if attempt + 1 < PORT_ATTEMPTS and "could not bind" in self._log_tail():
                    continue
                raise
            self.running = True
            return

    def _run(self, tool: str, *args: str) -> None:
        # cwd: the server user may not enter ours (root's home); initdb and pg_ctl complain then.
        done = subprocess.run([*self.prefix, str(self.bindir / tool), *args], cwd=self.root, capture_output=True,
                              text=True, timeout=TIMEOUT_S + 10, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise PostgresStartError(f"{tool} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                                     f"\n--- {self.log} ---\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def with_dbname(url: str, dbname: str) -> str:
    """The same server and credentials, another database (URLs only, not key=value strings)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


class PostgresServer:
    """A server the tests create and drop databases on, through one autocommit admin connection."""

    def __init__(self, admin_url: str, cluster: PrivateCluster | None = None) -> None:
        self._admin_url = admin_url
        self._cluster = cluster
        self._admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=10)

    @classmethod
    def for_tests(cls) -> PostgresServer:
        """The server named by AGENTVINE_TEST_DATABASE_URL, else a private one."""
        existing = os.environ.get(DATABASE_URL_ENV)
        return cls(existing) if existing else cls.start_private()

    @classmethod
    def start_private(cls) -> PostgresServer:
        cluster = PrivateCluster.start()
        try:
            return cls(cluster.url(ADMIN_DB), cluster)
        except BaseException:
            cluster.stop()
            raise

    @property
    def private(self) -> bool:
        return self._cluster is not None

    def url(self, dbname: str) -> str:
        return with_dbname(self._admin_url, dbname)

    def create_database(self, name: str, *, template: str = "template0") -> None:
        """template0: always pristine, and never busy (it takes no connections; copying a template
        another session is connected to fails). Another template (one with the schema applied, say)
        must have no session open while it is copied."""
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        if template == "template0":  # UTF-8 and C collation whatever an existing server's defaults
            statement += sql.SQL(" ENCODING 'UTF8' LOCALE 'C'")
        self._admin.execute(statement)

    def drop_database(self, name: str) -> None:
        """Ends the database's sessions (those a test left open, a pool it did not close) and waits for them
        in steps of 2 ms: DROP DATABASE waits in steps of 100 ms, even for one a test closed just before.
        FORCE for a session that came in between."""
        self._admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        deadline = time.monotonic() + TIMEOUT_S
        while self._sessions(name) and time.monotonic() < deadline:
            time.sleep(SESSION_POLL_S)
        self._admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _sessions(self, name: str) -> int:
        return self._admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]

    def database_exists(self, name: str) -> bool:
        return self._admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    @contextlib.contextmanager
    def fresh_database(self, *, template: str = "template0") -> Iterator[str]:
        """A new empty database under a unique name (sessions may share an existing server), dropped after."""
        name = TEST_DB_PREFIX + secrets.token_hex(6)
        self.create_database(name, template=template)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def stop(self) -> None:
        """Closes the admin connection; a private server is shut down and its folder removed."""
        self._admin.close()
        if self._cluster is not None:
            self._cluster.stop()
