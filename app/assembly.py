"""Where AgentVine's processes are put together, and the only place that does it.

- `build_worker` and `build_web` make the two halves: the worker (GitHub clients, dispatcher, job
  stages) and the web app (webhooks, health, job pages) over one store.
- `Service`: both in one process (tests, the demo, `agentvine serve --single-process`).
- `make_production_app`: `agentvine serve`; the web app here, the worker in a child process that
  app/engine/supervisor.py keeps running, with `worker_process_main` as its body.

Imports go one way: assembly → engine and web, never back."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

from aiohttp import web

from app import metrics
from app.domain.config import BotConfig, load_default
from app.engine.supervisor import WorkerSupervisor
from app.engine.worker import Worker
from app.settings import Settings, load_settings
from app.store import SQLiteJobStore
from app.store.base import JobStore
from app.web.server import make_web_app

log = logging.getLogger(__name__)

WORKER_POLL_S = 0.1  # how soon a worker process sees a delivery the web process put in the inbox
LISTEN_POLL_S = 2.0  # on PostgreSQL, NOTIFY wakes the workers at once: polling is only the fallback
IN_PROCESS_POLL_S = 2.0  # a worker beside the web app is woken at once (on_stored), polling is a fallback

# Every webhook parses a payload of thousands of small objects. They are freed by reference
# counting, but they still count towards the cycle collector's gen-0 threshold (700 by default),
# which then runs on nearly every request: +45% deliveries/s measured (docs/performance.md).
GC_THRESHOLDS = (50_000, 50, 100)


def tune_gc() -> None:
    """For long-running processes (the web process and the worker's), once start-up is done."""
    gc.collect()
    gc.freeze()  # what start-up allocated (modules, config) is never scanned again
    gc.set_threshold(*GC_THRESHOLDS)


def open_store(settings: Settings) -> JobStore:
    """PostgreSQL when AGENTVINE_DATABASE_URL names one, else SQLite in the data directory; opening migrates."""
    if settings.database_url is None:
        return SQLiteJobStore(settings.database_path)
    from app.store.postgres import PostgresJobStore  # psycopg is loaded only where it is used

    return PostgresJobStore(settings.database_url.get_secret_value())  # a postgresql:// URL (Settings checks)


def load_service_config(settings: Settings) -> BotConfig:
    """The shipped defaults (or the file AGENTVINE_BOT_CONFIG names). ConfigError if they are invalid or
    beyond one of the operator's ceilings: every job without a file of its own would run with them."""
    return load_default(settings.bot_config, settings.ceilings)


def build_worker(settings: Settings, store: JobStore | None = None, config: BotConfig | None = None, *,
                 poll_interval: float = IN_PROCESS_POLL_S) -> Worker:
    """The worker over `store` (opened from the settings if not given) with `config` (the shipped defaults,
    or the file AGENTVINE_BOT_CONFIG names, if not given). `worker.stop()` leaves the store open."""
    return Worker(settings, store or open_store(settings), config or load_service_config(settings),
                  poll_interval=poll_interval)


def build_web(settings: Settings, store: JobStore, worker: Worker | WorkerSupervisor, **probes) -> web.Application:
    """The web app over `store`, starting `worker` with it (the worker itself, or the supervisor of its
    process) and stopping it on cleanup, then closing the store. `probes` go to make_web_app
    (on_stored, worker_alive, worker_pid)."""
    app = make_web_app(settings, store, **probes)

    async def start_worker(_app: web.Application) -> None:
        await worker.start()

    async def stop_worker_then_close_store(_app: web.Application) -> None:
        try:
            await worker.stop()
        finally:
            store.close()

    app.on_startup.append(start_worker)
    app.on_cleanup.append(stop_worker_then_close_store)
    return app


class Service:
    """The web app and the worker in one process."""

    def __init__(self, settings: Settings, *, store: JobStore | None = None, config: BotConfig | None = None) -> None:
        missing = settings.missing_for_serve()
        if missing:
            raise ValueError("missing settings: " + ", ".join(missing))
        self.settings = settings
        self.worker = build_worker(settings, store, config)
        self.store = self.worker.store
        self.config = self.worker.config

    @property
    def dispatcher(self):  # noqa: ANN201 - convenience for tests
        return self.worker.dispatcher

    @property
    def clients(self):  # noqa: ANN201
        return self.worker.clients

    def make_app(self) -> web.Application:
        return build_web(self.settings, self.store, self.worker, on_stored=self.worker.dispatcher.wake)


class _Elsewhere:
    """`serve --role web`: the workers run in processes of their own (`serve --role worker`), on this
    machine or others, and share the store."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def make_web_only_app(settings: Settings) -> web.Application:
    """`agentvine serve --role web`: the web app alone (several behind a load balancer, on PostgreSQL)."""
    return build_web(settings, open_store(settings), _Elsewhere())


def make_production_app(settings: Settings, log_level: str) -> web.Application:
    """The web app, with the worker in a child process of its own (restarted if it dies)."""
    store = open_store(settings)  # migrates before the worker process opens it
    metrics.use_directory(settings.metrics_dir)  # before the worker is spawned: it inherits the folder
    supervisor = WorkerSupervisor(worker_process_main, (log_level, settings.worker_nice, os.getpid()))
    return build_web(settings, store, supervisor, worker_alive=supervisor.alive, worker_pid=supervisor.pid)


def worker_process_main(log_level: str, nice: int, parent: int) -> None:
    """The body of the worker's process: settings from the environment, as the web process read them."""
    # Background work yields the CPU to the webhook: a delivery must be answered within GitHub's
    # 10 s (we aim for milliseconds); an acknowledgement may lag by a few.
    if nice:
        os.nice(nice)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s worker %(name)s: %(message)s")
    tune_gc()
    asyncio.run(run_worker(load_settings(), parent=parent))  # the web process, even if it died while we started


PARENT_CHECK_S = 1.0  # how soon a worker process notices that its web process is gone


async def _stop_when_orphaned(stopping: asyncio.Event, parent: int) -> None:
    """A web process killed without its clean-up (SIGKILL, OOM) leaves its worker behind; the next web
    process would start a second one on the same store and both would run the same jobs."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_S)
    log.error("the web process %d is gone; this worker stops", parent)
    stopping.set()


async def run_worker(settings: Settings, *, parent: int | None = None) -> None:
    """Run a worker until SIGINT or SIGTERM (or until `parent` is gone), then stop its stages and close
    the store."""
    store = open_store(settings)
    worker = build_worker(settings, store, poll_interval=WORKER_POLL_S if store.backend == "sqlite" else LISTEN_POLL_S)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    watcher = asyncio.create_task(_stop_when_orphaned(stopping, parent)) if parent else None
    await worker.start()
    try:
        await stopping.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await worker.stop()
        worker.store.close()
