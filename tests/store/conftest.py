"""Every store test runs against both backends: SQLite in a file, and a real PostgreSQL server
(`open_store`, in tests/conftest.py: tests/engine uses it too)."""

from __future__ import annotations

import pytest

from app.store.base import JobStore


@pytest.fixture
def store(open_store) -> JobStore:
    return open_store()
