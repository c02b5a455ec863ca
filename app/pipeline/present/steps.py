"""Setup and verify results as people see them: a table and the tail of each output in the check run,
one line in the pull request body and the tracking comment. Commands are the repository's and outputs
the sandbox's: both are shown only through app/domain/untrusted.py's escapers."""

from __future__ import annotations

from app.domain.steps import StepResult, last_verify
from app.domain.untrusted import code_span, html_code, html_text, output_block, table_cell
from app.pipeline.present import texts

TAIL_CHARS = 3_000  # of each step's output in the check run
MAX_ROWS = 60
MAX_OUTPUTS = 12  # the last outputs shown, so the section stays well within a check run's 65,535 characters


def how(step: StepResult) -> str:
    """What became of a step, in words: passed, exited with 2, timed out, could not run."""
    if step.error is not None:
        return texts.STEP_HOW["error"].format(error=step.error)
    if step.timed_out:
        return texts.STEP_HOW["timed_out"].format(minutes=round(step.duration_s / 60, 1))
    if step.exit_code == 0:
        return texts.STEP_HOW["passed"]
    return texts.STEP_HOW["exit"].format(exit_code=step.exit_code)


def command(step: StepResult) -> str:
    return code_span(step.command, 200)


def _duration(step: StepResult) -> str:
    return f"{step.duration_s:.1f} s"


def _attempt(step: StepResult) -> str:
    return f", attempt {step.attempt}" if step.phase == "verify" else ""


def steps_section(steps: list[StepResult]) -> str:
    """The check run's section: one row per command run, then each output's tail, collapsed."""
    if not steps:
        return ""
    rows = [f"| {step.phase}{_attempt(step)} | {table_cell(command(step))} | "
            f"{step.exit_code if step.exit_code is not None else '–'} | {_duration(step)} |" for step in steps[:MAX_ROWS]]
    blocks = [_output(step) for step in steps if step.head or step.tail or step.error][-MAX_OUTPUTS:]
    return "\n".join([texts.STEPS_HEADING, "", texts.STEPS_TABLE_HEAD, *rows, "", *blocks])


def _output(step: StepResult) -> str:
    # Inside <summary> no Markdown is parsed: the command and the error text are escaped as HTML there.
    summary = texts.STEP_OUTPUT_SUMMARY.format(command=html_code(step.command, 200), phase=step.phase,
                                               attempt=_attempt(step))
    body = output_block(step.output_tail(TAIL_CHARS) if step.head or step.tail else how(step))
    return f"<details><summary>{summary} — {html_text(how(step), 300)}</summary>\n\n{body}\n\n</details>\n"


def verify_line(steps: list[StepResult]) -> str:
    """For the pull request body and the outcome: what the last verify attempt showed ("" if none ran)."""
    final, failed = last_verify(steps)
    if not final:
        return ""
    last = final[0].attempt
    if failed is not None:
        return texts.VERIFY_FAILED_LINE.format(command=command(failed), how=how(failed), attempts=last)
    after = texts.VERIFY_AFTER_ATTEMPTS.format(attempts=last) if last > 1 else ""
    return texts.VERIFIED_LINE.format(commands=", ".join(command(step) for step in final), after=after)
