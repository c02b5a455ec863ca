"""The fix-up loop: run the verify commands after the agent; when one fails, resume the same Claude
session (`claude --resume`) with the failing command and the tail of its output, up to
`verify.max_attempts` verify runs. What the last run showed decides the pull request (change.py:
a draft stating the failure, or no pull request with `verify.on_failure: fail`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.agent.usage import Usage
from app.domain.job import Outcome
from app.domain.steps import StepResult
from app.domain.untrusted import output_block
from app.pipeline.context import JobContext
from app.pipeline.present import texts
from app.pipeline.present.steps import how
from app.pipeline.questions import parse_question
from app.pipeline.steps import StepsRunner

RESUME_OUTPUT_CHARS = 6_000  # of the failing command's output, in the resumed session's prompt


@dataclass
class Round:
    """One more agent run in the same session: its final text, usage, and the outcome if it failed."""

    text: str
    usage: Usage
    failed: Outcome | None = None


#: runs the agent again with this prompt, resuming the job's session
Resume = Callable[[str], Awaitable[Round]]


@dataclass
class Verdict:
    passed: bool | None  # None: nothing to verify
    text: str  # the agent's final text after the last round
    usage: Usage
    failed: Outcome | None = None  # a resumed round that failed (timeout, budget...): the job ends so


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(**{name: getattr(a, name) + getattr(b, name) for name in Usage.model_fields})


def resume_prompt(failed: StepResult, max_attempts: int) -> str:
    return texts.VERIFY_RESUME.format(command=failed.command.replace("`", "'"), how=how(failed),
                                      attempt=failed.attempt, max_attempts=max_attempts,
                                      output=output_block(failed.output_tail(RESUME_OUTPUT_CHARS)))


async def verify_and_fix(ctx: JobContext, runner: StepsRunner, resume: Resume, text: str, usage: Usage) -> Verdict:
    """Verify, and resume the session on a failure while attempts are left; `text` and `usage` are the
    first agent run's."""
    limits = ctx.job.run
    assert limits is not None
    if not limits.verify or parse_question(text) is not None:
        return Verdict(None, text, usage)
    for attempt in range(1, limits.verify_max_attempts + 1):
        failed = await runner.phase("verify", limits.verify, attempt)
        if failed is None:
            return Verdict(True, text, usage)
        if attempt == limits.verify_max_attempts:
            break
        ctx.update("verify_retry", log={"attempt": attempt, "exit_code": failed.exit_code})
        round_ = await resume(resume_prompt(failed, limits.verify_max_attempts))
        usage = add_usage(usage, round_.usage)
        if round_.failed is not None:
            return Verdict(False, text, usage, round_.failed)
        text = round_.text or text
        if parse_question(text) is not None:  # the agent asks instead: the question flow takes over
            return Verdict(None, text, usage)
    return Verdict(False, text, usage)
