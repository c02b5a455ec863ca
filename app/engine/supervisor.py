"""`agentvine serve` in production: the web app in this process, the worker in a child process.

The two share nothing but the inbox and the store, so a slow pipeline (GitHub calls, containers, parsing the
agent's output) never delays the webhook's 202. The web process restarts a worker that died."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from multiprocessing.process import BaseProcess

from aiohttp import web

from app.domain.config import load_default
from app.runtime import tune_gc
from app.settings import Settings
from app.store import SQLiteJobStore

log = logging.getLogger(__name__)

WORKER_POLL_S = 0.1  # how soon the worker sees a delivery the web process put in the inbox
SUPERVISE_EVERY_S = 5.0


def _worker_main(log_level: str, nice: int) -> None:
    # Background work yields the CPU to the webhook: a delivery must be answered within GitHub's
    # 10 s (we aim for milliseconds); an acknowledgement may lag by a few.
    if nice:
        os.nice(nice)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s worker %(name)s: %(message)s")
    tune_gc()
    asyncio.run(_run_worker())


async def _run_worker() -> None:
    from app.engine.worker import Worker

    settings = Settings()
    store = SQLiteJobStore(settings.database_path)
    worker = Worker(settings, store, load_default(settings.bot_config), poll_interval=WORKER_POLL_S)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await worker.start()
    try:
        await stopping.wait()
    finally:
        await worker.stop()
        store.close()


class WorkerSupervisor:
    def __init__(self, log_level: str, nice: int) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._log_level = log_level
        self._nice = nice
        self.process: BaseProcess | None = None
        self._task: asyncio.Task[None] | None = None

    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def _spawn(self) -> None:
        self.process = self._ctx.Process(target=_worker_main, args=(self._log_level, self._nice), name="agentvine-worker")
        self.process.start()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(SUPERVISE_EVERY_S)
            if not self.alive():
                code = self.process.exitcode if self.process else None
                log.error("the worker process stopped (exit code %s); starting a new one", code)
                self._spawn()

    async def on_startup(self, _app: web.Application) -> None:
        self._spawn()
        self._task = asyncio.create_task(self._watch())

    async def on_cleanup(self, _app: web.Application) -> None:
        if self._task:
            self._task.cancel()
        if self.process and self.process.is_alive():
            self.process.terminate()  # SIGTERM: the worker stops its jobs' stages cleanly
            await asyncio.get_running_loop().run_in_executor(None, self.process.join, 30)
            if self.process.is_alive():
                self.process.kill()


def make_production_app(settings: Settings, log_level: str) -> web.Application:
    from app.web.server import make_web_app

    store = SQLiteJobStore(settings.database_path)  # migrates before the worker opens it
    supervisor = WorkerSupervisor(log_level, settings.worker_nice)
    app = make_web_app(settings, store, worker_alive=supervisor.alive, worker_pid=supervisor.pid)
    app.on_startup.append(supervisor.on_startup)
    app.on_cleanup.append(supervisor.on_cleanup)
    app.on_cleanup.append(lambda _app: asyncio.sleep(0, store.close()))
    return app
