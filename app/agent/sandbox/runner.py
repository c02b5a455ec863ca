"""Run one command in a fresh sandbox container, stream its output, and always remove it.

A run ends in one of four ways: the command exits, the wall clock (``spec.timeout_s``) runs
out, the job is cancelled, or a guard (e.g. the workspace's quota) says stop; in the last three
the container is killed. Whichever way, and also when ``on_line`` raises or the calling task is
cancelled, the container is removed. stdout is read through a Docker *attach* stream opened
before the container starts (nothing is lost, nothing depends on the log driver; output.py).
The container itself, and every isolation setting, comes from container.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .container import (
    ImageUnusable,
    SandboxError,
    SandboxSpec,
    check_shell,
    connect_docker,
    container_settings,
    create_container,
    import_docker,
    prepare_host,
)
from .output import OnLine, Reader, pump

__all__ = ["SandboxResult", "run_sandbox"]

log = logging.getLogger(__name__)

#: After a kill, how long the output already produced may take to reach ``on_line``.
DRAIN_AFTER_KILL_S = 5.0


@dataclass
class SandboxResult:
    #: the command's exit code; None when the container was killed (timeout, cancel)
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    #: container start to exit (or kill), seconds
    duration_s: float
    #: the last bytes the command wrote to stderr (decoded, for error messages)
    stderr_tail: str = ""
    #: the kernel's OOM killer ended the command (memory limit)
    oom_killed: bool = False
    #: why the guard stopped the command (killed, ``exit_code`` None); None when it did not
    stopped: str | None = None


STDERR_TAIL_BYTES = 64 * 1024  # what is kept of the agent's stderr, for the failure report
GUARD_INTERVAL_S = 1.0  # how often the guard (the workspace quota) is checked


async def run_sandbox(
    spec: SandboxSpec,
    on_line: OnLine,
    *,
    cancel: asyncio.Event | None = None,
    client=None,
    guard: Callable[[], str | None] | None = None,
) -> SandboxResult:
    """Run ``spec.command`` in a fresh sandbox container; call ``on_line`` per stdout line.

    ``on_line`` may be a plain function or a coroutine function; it is called in order, one
    line at a time (without the newline). Returns when the command exits, when
    ``spec.timeout_s`` has passed (killed, ``timed_out``), or when ``cancel`` is set (killed,
    ``cancelled``). The container is removed in every case, also when ``on_line`` raises or
    the calling task is cancelled. Raises :class:`SandboxError` for setup problems.

    ``guard``, when given, is called every GUARD_INTERVAL_S while the command runs; a
    reason it returns kills the container (``stopped``), e.g. the workspace's quota.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + spec.timeout_s
    if cancel is not None and cancel.is_set():
        return SandboxResult(None, False, True, 0.0)
    settings = container_settings(spec)

    own_client = client is None
    if own_client:
        client = await asyncio.to_thread(connect_docker)
    run = _Run(spec, settings, client, own_client, deadline)
    try:
        await run.start(on_line, STDERR_TAIL_BYTES)
        outcome = await run.wait(cancel, guard, GUARD_INTERVAL_S)
        return await run.result(outcome)
    finally:
        await run.clean_up()


@dataclass
class _Outcome:
    """How the command ended (the fields of :class:`SandboxResult` known at that moment)."""

    exit_code: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    stopped: str | None = None


class _Run:
    """One container's life, from creation to removal: the state the steps of a run share."""

    def __init__(self, spec: SandboxSpec, settings: dict[str, Any], client, own_client: bool,
                 deadline: float) -> None:
        self.spec = spec
        self.settings = settings
        self.name: str = settings["name"]
        self.client = client
        self.own_client = own_client
        self.loop = asyncio.get_running_loop()
        self.deadline = deadline
        self.container = None
        self.stream = None
        self.reader: Reader | None = None
        self.pump: asyncio.Task | None = None
        self.cancel_task: asyncio.Task | None = None
        self.guard_task: asyncio.Task | None = None
        self.t_start: float | None = None
        self.t_end: float | None = None

    async def start(self, on_line: OnLine, stderr_tail_bytes: int) -> None:
        await asyncio.to_thread(prepare_host, self.spec)
        self.container = await asyncio.to_thread(create_container, self.client, self.settings)
        if self.spec.runtime_volume is not None:
            await asyncio.to_thread(check_shell, self.client, self.container)
        # Attach before start: every byte of output is seen, whatever the log driver.
        self.stream = await asyncio.to_thread(
            self.client.api.attach, self.container.id,
            stdout=True, stderr=True, stream=True, logs=False, demux=True,
        )
        queue: asyncio.Queue = asyncio.Queue()
        self.reader = Reader(self.stream, self.loop, queue, stderr_tail_bytes, self.spec.job_id)
        self.reader.start()
        self.pump = asyncio.create_task(pump(queue, on_line))
        await asyncio.to_thread(self._start)
        self.t_start = self.loop.time()
        log.info("sandbox %s started (%s)", self.name, self.container.short_id)

    def _start(self) -> None:
        try:
            self.container.start()
        except import_docker().errors.APIError as exc:
            # 404/409: the container went away meanwhile (an operator, an orphan sweep): not the image's doing.
            if self.spec.runtime_volume is None or exc.status_code in (404, 409):
                raise
            # The image's fault (a /bin/sh that cannot run, say): Docker's text stays in the log.
            log.warning("sandbox %s: %s cannot start: %s", self.name, self.spec.image, exc)
            raise ImageUnusable("start_failed") from exc

    async def wait(self, cancel: asyncio.Event | None, guard: Callable[[], str | None] | None,
                   guard_interval_s: float) -> _Outcome:
        """Until the output ends (the command exited), or the deadline, cancel or guard."""
        assert self.pump is not None
        waiters: set[asyncio.Future] = {self.pump}
        if cancel is not None:
            self.cancel_task = asyncio.create_task(cancel.wait())
            waiters.add(self.cancel_task)
        if guard is not None:
            self.guard_task = asyncio.create_task(_watch(guard, guard_interval_s))
            waiters.add(self.guard_task)
        remaining = max(0.0, self.deadline - self.loop.time())
        done, _ = await asyncio.wait(waiters, timeout=remaining,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.pump in done:
            return await self._exited()
        return await self._kill(self._why_stopped(done))

    async def _exited(self) -> _Outcome:
        assert self.pump is not None and self.container is not None
        self.pump.result()  # re-raises what on_line raised
        try:
            # The output ends when the container stops, so this returns at once.
            state = await asyncio.to_thread(
                self.container.wait, timeout=max(5.0, self.deadline - self.loop.time()))
        except Exception as exc:  # noqa: BLE001 - e.g. a read timeout from requests
            raise SandboxError(
                f"the output of {self.name} ended but the container did not exit: "
                f"{exc}") from exc
        self.t_end = self.loop.time()
        return _Outcome(exit_code=int(state.get("StatusCode", -1)))

    def _why_stopped(self, done: set[asyncio.Future]) -> _Outcome:
        if self.cancel_task is not None and self.cancel_task in done:
            log.info("sandbox %s cancelled", self.name)
            return _Outcome(cancelled=True)
        if self.guard_task is not None and self.guard_task in done:
            stopped = self.guard_task.result()
            log.info("sandbox %s stopped: %s", self.name, stopped)
            return _Outcome(stopped=stopped)
        log.info("sandbox %s timed out after %.1fs", self.name, self.spec.timeout_s)
        return _Outcome(timed_out=True)

    async def _kill(self, outcome: _Outcome) -> _Outcome:
        assert self.pump is not None
        await asyncio.to_thread(_kill, self.container)
        self.t_end = self.loop.time()
        # Hand over what was printed before the kill (the stream ends with the container).
        try:
            await asyncio.wait_for(asyncio.shield(self.pump), DRAIN_AFTER_KILL_S)
        except asyncio.TimeoutError:
            log.warning("sandbox %s: output did not end after the kill", self.name)
        return outcome

    async def result(self, outcome: _Outcome) -> SandboxResult:
        assert self.container is not None
        oom = False
        try:
            await asyncio.to_thread(self.container.reload)
            oom = bool(self.container.attrs.get("State", {}).get("OOMKilled"))
        except Exception:  # noqa: BLE001 - informative only
            pass
        return SandboxResult(
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            cancelled=outcome.cancelled,
            duration_s=(self.t_end - self.t_start) if self.t_start is not None else 0.0,
            stderr_tail=self.reader.stderr_text() if self.reader else "",
            oom_killed=oom,
            stopped=outcome.stopped,
        )

    async def clean_up(self) -> None:
        """Stop the helper tasks and remove the container, even if this task is cancelled."""
        for task in (self.cancel_task, self.guard_task, self.pump):
            if task is not None and not task.done():
                task.cancel()
        removal: asyncio.Future | None = None
        try:
            if self.container is not None:
                # The thread runs to the end even if this task is cancelled meanwhile.
                removal = asyncio.ensure_future(asyncio.to_thread(_remove, self.container))
                try:
                    await asyncio.shield(removal)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - remove_orphans will catch it later
                    log.exception("could not remove sandbox container %s", self.name)
        finally:
            self._close(removal)

    def _close(self, removal: asyncio.Future | None) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except Exception:  # noqa: BLE001
                pass
        if self.reader is not None and self.reader.error is not None and not isinstance(
            self.reader.error, (OSError, StopIteration)
        ):
            log.warning("sandbox %s: output reader failed: %r", self.name, self.reader.error)
        if self.own_client and (removal is None or removal.done()):
            try:
                self.client.close()
            except Exception:  # noqa: BLE001
                pass


async def _watch(guard: Callable[[], str | None], interval: float) -> str:
    while True:
        await asyncio.sleep(interval)
        reason = guard()
        if reason:
            return reason


def _kill(container) -> None:
    docker = import_docker()
    try:
        container.kill()
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:  # 409: not running any more
        if exc.status_code != 409:
            raise


def _remove(container) -> None:
    docker = import_docker()
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code == 409 and "already in progress" in str(exc):
            return
        raise
