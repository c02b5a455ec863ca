"""Every store test runs against both backends: SQLite in a file, and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.store import SQLiteJobStore
from app.store.base import JobStore


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request, tmp_path) -> Iterator[Callable[[], JobStore]]:
    """Opens the backend's store on one database: each call another connection to the same data (a
    second process, or the next one after a restart). Every store it opened is closed after the test."""
    if request.param == "sqlite":
        def factory() -> JobStore:
            return SQLiteJobStore(tmp_path / "db.sqlite")
    else:
        from app.store.postgres import PostgresJobStore

        url = request.getfixturevalue("pg_url")

        def factory() -> JobStore:
            return PostgresJobStore(url)
    opened: list[JobStore] = []

    def open_one() -> JobStore:
        opened.append(factory())
        return opened[-1]

    yield open_one
    for store in opened:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - closed by the test already
            pass


@pytest.fixture
def store(open_store) -> JobStore:
    return open_store()
