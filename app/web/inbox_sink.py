"""Where the webhook puts a delivery before its 202. On PostgreSQL, the inbox table (app/store/pg_inbox.py):
any worker on any machine imports it, and a delivery answered 202 outlives this web instance's machine.
Otherwise the file inbox (app/intake/inbox.py), which the worker beside this process reads."""

from __future__ import annotations

from aiohttp import web

from app.intake.inbox import GroupAppend, InboxWriter
from app.settings import Settings
from app.store.base import JobStore
from app.web.webhook import Append

INBOX_SINK = web.AppKey("inbox_sink", object)  # GroupAppend or PostgresInbox (tests look at it)


def add_inbox_sink(app: web.Application, settings: Settings, store: JobStore) -> Append:
    """The sink for `store`'s backend, opened with the app and closed on its clean-up."""
    if store.backend == "postgresql":
        from app.store.pg_inbox import PostgresInbox  # psycopg only where PostgreSQL is used

        table = PostgresInbox(store.url)  # type: ignore[attr-defined]  # PostgresJobStore's

        async def open_table(_app: web.Application) -> None:
            await table.open()

        async def close_table(_app: web.Application) -> None:
            await table.close()

        app.on_startup.append(open_table)
        app.on_cleanup.append(close_table)
        app[INBOX_SINK] = table
        return table
    files = InboxWriter(settings.inbox_path)

    async def close_files(_app: web.Application) -> None:
        files.close()

    app.on_cleanup.append(close_files)
    app[INBOX_SINK] = append = GroupAppend(files)
    return append
