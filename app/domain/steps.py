"""Setup and verify steps (`.github/agentvine.yml` → `setup`, `verify`, `steps`): the repository's own
commands, run in the sandbox before the agent (setup) and after it (verify), and what each one did.

The commands are the repository's, run as the agent in the same sandbox; their output is data (the
repository's and the agent's), shown on GitHub only through app/domain/untrusted.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STEPS = 20
MAX_COMMAND_CHARS = 4_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    """One command (`sh -c`), with its own timeout when it sets one (else `steps.timeout_minutes`)."""

    run: Annotated[str, Field(min_length=1, max_length=MAX_COMMAND_CHARS)]
    timeout_minutes: Annotated[float, Field(gt=0, le=360)] | None = None

    @field_validator("run")
    @classmethod
    def _one_command(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the command is empty")
        if "\0" in value:
            raise ValueError("the command contains a NUL byte")
        return value


def _steps_shape(value: Any) -> Any:
    """A step may be a plain string (the command) or a mapping with `run` and `timeout_minutes`."""
    if not isinstance(value, list):
        raise ValueError("must be a list of commands (strings, or mappings with `run` and `timeout_minutes`)")
    for index, item in enumerate(value):
        if not isinstance(item, (str, dict, Step)):
            raise ValueError(f"entry {index} must be a command (a string) or a mapping with `run`, not {type(item).__name__}")
    return [{"run": item} if isinstance(item, str) else item for item in value]


class StepsSettings(_Strict):
    """Limits common to every step."""

    timeout_minutes: Annotated[float, Field(gt=0, le=360)]
    output_kb: Annotated[int, Field(ge=4, le=1024)]  # what is kept of a step's output: head + tail


class VerifySettings(_Strict):
    commands: Annotated[list[Step], Field(max_length=MAX_STEPS)]
    max_attempts: Annotated[int, Field(ge=1, le=10)]  # verify runs, the first included
    on_failure: Literal["draft", "fail"]  # still failing after the last attempt: a draft PR, or no PR

    @field_validator("commands", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        return _steps_shape(value)


def setup_shape(value: Any) -> Any:
    return _steps_shape(value)


def step_timeouts(config: Any) -> Iterator[tuple[str, float]]:
    """(key, minutes) of `steps.timeout_minutes` and of every step of a BotConfig that sets its own
    timeout (the operator's ceiling bounds them all)."""
    yield "steps.timeout_minutes", config.steps.timeout_minutes
    for phase, steps in (("setup", config.setup), ("verify.commands", config.verify.commands)):
        for index, step in enumerate(steps):
            if step.timeout_minutes is not None:
                yield f"{phase}.{index}.timeout_minutes", step.timeout_minutes


def expand_verify(override: dict[str, Any]) -> dict[str, Any]:
    """`verify: [commands]` stands for `verify: {commands: [...]}` (the other keys keep their defaults)."""
    if isinstance(override.get("verify"), list):
        return {**override, "verify": {"commands": override["verify"]}}
    return override


class StepResult(BaseModel):
    """What one step did. `head` and `tail` are its output (stdout and stderr together), untrusted."""

    phase: Literal["setup", "verify"]
    command: str
    attempt: int = 1
    exit_code: int | None = None  # None: it did not exit by itself (timeout, cancel, out of memory)
    timed_out: bool = False
    duration_s: float = 0.0
    head: str = ""
    tail: str = ""
    omitted_bytes: int = 0  # output between head and tail that was not kept
    error: str | None = None  # the step could not run at all (our words, not its output)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    def output_tail(self, chars: int) -> str:
        """The last `chars` characters of what was kept (head, a gap mark, tail)."""
        text = self.head + (f"\n[… {self.omitted_bytes} bytes left out …]\n" if self.omitted_bytes else "") + self.tail
        return text[-chars:]


def last_verify(steps: list[StepResult]) -> tuple[list[StepResult], StepResult | None]:
    """The verify commands of the last attempt, and the one that failed in it (None: it passed)."""
    verify = [step for step in steps if step.phase == "verify"]
    if not verify:
        return [], None
    last = max(step.attempt for step in verify)
    final = [step for step in verify if step.attempt == last]
    return final, next((step for step in final if not step.ok), None)
