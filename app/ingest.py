"""Group commit for webhook deliveries.

Every delivery must be stored before its 202. One transaction per delivery makes the commit
the largest cost of the webhook path; deliveries that arrive in the same event-loop iteration
therefore share one transaction, and each request waits for the commit that holds its rows.
Alone, a delivery is committed on the next loop iteration: no added latency."""

from __future__ import annotations

import asyncio

from app.store.base import DeliveryRecord, JobStore

MAX_BATCH = 256


class DeliveryWriter:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._pending: list[tuple[DeliveryRecord, asyncio.Future[bool]]] = []
        self._scheduled = False

    async def write(self, record: DeliveryRecord) -> bool:
        """True once stored; False when the delivery id was seen before."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._pending.append((record, future))
        if len(self._pending) >= MAX_BATCH:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            results = self._store.record_deliveries([record for record, _ in batch])
        except Exception as exc:  # every waiting request learns of it and answers 5xx
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), stored in zip(batch, results):
            if not future.done():
                future.set_result(stored)
