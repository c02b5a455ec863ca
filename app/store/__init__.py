"""Durable storage of deliveries, jobs and job events."""

from app.store.base import JobStore
from app.store.sqlite import SQLiteJobStore

__all__ = ["JobStore", "SQLiteJobStore"]
