"""The pool's check of an idle PostgreSQL connection (app/store/postgres.py: _check_idle) on the
descriptor numbers a busy worker reaches: select() cannot watch one of 1024 or more."""

from __future__ import annotations

import os
import resource
import socket

import pytest

from app.store.postgres import _check_idle

HIGH_FD = 1500


class Connection:
    """As much of a psycopg connection as the check uses: its socket, and a round trip."""

    def __init__(self, fd: int) -> None:
        self.fd, self.round_trips = fd, 0

    def fileno(self) -> int:
        return self.fd

    def execute(self, query: str) -> None:
        self.round_trips += 1


@pytest.fixture
def high_socket():
    """A socket pair whose client end sits at descriptor HIGH_FD."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= HIGH_FD:
        pytest.fail(f"the descriptor limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, HIGH_FD + 1), hard))
    server, client = socket.socketpair()
    os.dup2(client.fileno(), HIGH_FD)
    client.close()
    try:
        yield server
    finally:
        os.close(HIGH_FD)
        server.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_idle_connection_at_a_high_descriptor_is_handed_out_without_a_round_trip(high_socket):
    conn = Connection(HIGH_FD)
    _check_idle(conn)  # type: ignore[arg-type]
    assert conn.round_trips == 0


def test_a_connection_the_server_ended_at_a_high_descriptor_is_checked_with_a_round_trip(high_socket):
    high_socket.sendall(b"E")  # the server's notice before it closes
    conn = Connection(HIGH_FD)
    _check_idle(conn)  # type: ignore[arg-type]
    assert conn.round_trips == 1
