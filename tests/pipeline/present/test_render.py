"""Rendering of what people read, and the defusing of the agent's text before it is published."""

import json

from app.pipeline.run import Transcript
from app.pipeline.present.render import Progress
from app.domain.untrusted import defuse_mentions


class _Collect:
    def __init__(self) -> None:
        self.progress = Progress()

    def activity(self, line: str) -> None:
        self.progress.activity.append(line)


def test_mentions_in_the_agents_text_notify_no_one():
    assert defuse_mentions("ping @octocat and @org/team") == "ping @\u200boctocat and @\u200borg/team"
    assert defuse_mentions("mail me@example.com, `@in-code`") == "mail me@example.com, `@in-code`"


def test_activity_lines_are_defused_as_they_arrive():
    reporter = _Collect()
    transcript = Transcript(reporter)  # type: ignore[arg-type]
    line = {"type": "assistant", "session_id": "s", "message": {"id": "m", "role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "echo hi @everyone-team"}}]}}
    transcript.on_line(json.dumps(line))
    (activity,) = reporter.progress.activity
    assert "@\u200beveryone-team" in activity and "@everyone" not in activity


async def test_a_closed_reporter_sends_no_late_progress_edit():
    import asyncio
    import time

    from app.pipeline.progress import ProgressReporter

    class Ctx:  # only what ProgressReporter touches before it sends
        job = None

    reporter = ProgressReporter(Ctx(), Progress(), prefix="/agentvine", interval=0.05)  # type: ignore[arg-type]
    sent = []

    async def send() -> None:
        sent.append(1)

    reporter.send = send  # type: ignore[method-assign]
    reporter._last_sent = time.monotonic()  # an edit just went out: the next one waits
    reporter.activity("Edited `x.py`")
    reporter.close()
    await asyncio.sleep(0.15)
    assert sent == []
    reporter.activity("Ran `pytest`")  # and without close() it would have gone out
    await asyncio.sleep(0.15)
    assert sent == [1]
