"""Run one setup or verify command of the repository in the sandbox, and keep a bounded part of what it
printed.

Each command gets a container of its own (run_sandbox, every isolation setting of the agent's), on the
job's workspace and home. Why not `docker exec` into one long-lived container: the agent's container
lives exactly as long as `claude`, and a step's timeout kills its whole container, so nothing a step
(or the agent before it) started in the background is left running or can tamper with the next step;
a container costs ~0.3 s, which a step's own run dwarfs."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from app.domain.steps import StepResult

from .container import SandboxError, SandboxSpec
from .runner import run_sandbox


class BoundedOutput:
    """The first and the last `limit // 2` characters of a stream of lines; the rest only counted.
    A command that prints 50 MB costs the host this much memory, and no disk."""

    def __init__(self, limit: int) -> None:
        self.half = max(1, limit // 2)
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.omitted = 0

    def add(self, line: str) -> None:
        line = line + "\n"
        if self.head_size < self.half:
            room = self.half - self.head_size
            self.head.append(line[:room])
            self.head_size += min(len(line), room)
            line = line[room:]
            if not line:
                return
        line = line[-self.half:]
        self.tail.append(line)
        self.tail_size += len(line)
        while self.tail_size > self.half:
            dropped = self.tail.popleft()
            excess = self.tail_size - self.half
            if len(dropped) > excess:  # keep the end of a line that straddles the bound
                self.tail.appendleft(dropped[excess:])
                self.tail_size -= excess
                self.omitted += excess
            else:
                self.tail_size -= len(dropped)
                self.omitted += len(dropped)

    def texts(self) -> tuple[str, str]:
        return "".join(self.head), "".join(self.tail)


@dataclass(frozen=True)
class StepRun:
    """One command to run: where (the job's sandbox spec, its command replaced) and for how long."""

    phase: str
    command: str
    timeout_s: float
    output_bytes: int
    attempt: int = 1
    index: int = 0  # its place among the phase's commands (the container's name tells them apart)


async def run_step(base: SandboxSpec, step: StepRun, *, client=None, cancel: asyncio.Event | None = None,
                   guard: Callable[[], str | None] | None = None) -> StepResult:
    """Run `step.command` with `sh -c` (stderr joined to stdout) in a container made from `base`."""
    output = BoundedOutput(step.output_bytes)
    name = f"{base.job_id}-{step.phase}-{step.attempt}-{step.index}"
    spec = replace(base, job_id=name, command=["/bin/sh", "-c", "exec 2>&1\n" + step.command],
                   timeout_s=step.timeout_s, gateway_socket=None)
    started = time.monotonic()
    result = StepResult(phase=step.phase, command=step.command, attempt=step.attempt)  # type: ignore[arg-type]
    try:
        run = await run_sandbox(spec, output.add, cancel=cancel, client=client, guard=guard)
    except SandboxError as exc:
        return result.model_copy(update={"error": str(exc), "duration_s": time.monotonic() - started})
    head, tail = output.texts()
    error = None
    if run.oom_killed:
        error = "out of memory"
    elif run.stopped:
        error = run.stopped
    elif run.cancelled:
        error = "cancelled"
    return result.model_copy(update={
        "exit_code": run.exit_code, "timed_out": run.timed_out, "duration_s": round(run.duration_s, 3),
        "head": head, "tail": tail, "omitted_bytes": output.omitted, "error": error,
    })
