"""The PostgreSQL fixtures hold what the store's tests rely on: a real server, one empty database per
test, dropped after it, and (as root) a server that is not root's."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import psycopg
import pytest

from tests.support import postgres
from tests.support.postgres import TEST_DB_PREFIX, PostgresUnavailable, with_dbname

_SEEN: list[str] = []  # the databases of the tests before, which must be gone


def _user_tables(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')").fetchone()[0]


def test_a_real_server_answers(pg_url):
    with psycopg.connect(pg_url) as conn:
        (version,) = conn.execute("SELECT version()").fetchone()
        assert "PostgreSQL" in version
        assert conn.execute("SELECT current_database()").fetchone()[0].startswith(TEST_DB_PREFIX)
        assert conn.execute("SHOW server_encoding").fetchone()[0] == "UTF8"


@pytest.mark.parametrize("turn", ["first", "second"])
def test_each_test_has_its_own_empty_database_and_the_one_before_is_gone(turn, pg_url, postgres_server):
    with psycopg.connect(pg_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        assert _user_tables(conn) == 0
        conn.execute("CREATE TABLE marker (turn text)")  # the second would fail on the first's database
        conn.execute("INSERT INTO marker VALUES (%s)", (turn,))
    assert name not in _SEEN
    assert [old for old in _SEEN if postgres_server.database_exists(old)] == []
    _SEEN.append(name)


def test_a_database_is_dropped_with_the_sessions_left_open(postgres_server):
    with postgres_server.fresh_database() as url:
        name = url.rsplit("/", 1)[1]
        left_open = psycopg.connect(url, autocommit=True)
        left_open.execute("CREATE TABLE t (x int)")
        assert postgres_server.database_exists(name)
    assert not postgres_server.database_exists(name)
    with pytest.raises(psycopg.OperationalError):
        left_open.execute("SELECT 1")
    left_open.close()


def test_the_server_is_not_root_when_the_tests_are(pg_url, postgres_server):
    if not postgres_server.private:
        pytest.skip(f"the server of {postgres.DATABASE_URL_ENV} is not ours to check")
    with psycopg.connect(pg_url) as conn:
        (backend,) = conn.execute("SELECT pg_backend_pid()").fetchone()
    status = Path(f"/proc/{backend}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    if os.geteuid() == 0:
        assert uid == pwd.getpwnam(postgres.SERVER_USER).pw_uid != 0
    else:
        assert uid == os.geteuid()


def test_root_without_the_postgres_user_is_told_what_to_install(monkeypatch):
    def no_such_user(name):
        raise KeyError(name)

    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres.pwd, "getpwnam", no_such_user)
    with pytest.raises(PostgresUnavailable, match="no 'postgres' user.*install Debian's postgresql package"):
        postgres.run_as_prefix()


def test_an_existing_servers_url_keeps_its_credentials_and_options():
    assert (with_dbname("postgresql://u:p%40w@db.example:6543/admin?sslmode=require", "agentvine_test_1")
            == "postgresql://u:p%40w@db.example:6543/agentvine_test_1?sslmode=require")
