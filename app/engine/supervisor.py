"""The worker's own process in production (`agentvine serve`): spawn it, watch it, restart it.

The web process and the worker share nothing but the inbox and the store, so a slow pipeline
(GitHub calls, containers, parsing the agent's output) never delays the webhook's 202. What runs
in the child is passed in (`target`, built in app/assembly.py): the engine does not reach upwards."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from app import metrics

log = logging.getLogger(__name__)

SUPERVISE_EVERY_S = 5.0


class WorkerSupervisor:
    """Runs `target(*args)` in a child process (spawned: a fresh interpreter, no inherited loop or
    sockets), starts a new one when it dies, and stops it with SIGTERM."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...] = ()) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._target = target  # a module-level function: spawn pickles it by name
        self._args = args
        self.process: BaseProcess | None = None
        self._task: asyncio.Task[None] | None = None

    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def _spawn(self) -> None:
        self.process = self._ctx.Process(target=self._target, args=self._args, name="agentvine-worker")
        self.process.start()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(SUPERVISE_EVERY_S)
            if not self.alive():
                code = self.process.exitcode if self.process else None
                log.error("the worker process stopped (exit code %s); starting a new one", code)
                metrics.worker_replaced(self.pid())
                self._spawn()

    async def start(self) -> None:
        self._spawn()
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self.process and self.process.is_alive():
            self.process.terminate()  # SIGTERM: the worker stops its jobs' stages cleanly
            await asyncio.get_running_loop().run_in_executor(None, self.process.join, 30)
            if self.process.is_alive():
                self.process.kill()
