"""End to end against the GitHub fake: repository-controlled text (here a hostile .github/agentvine.yml)
reaches GitHub inert — no mention pings, no reference backlinks, no list item or code span is left."""

from __future__ import annotations

import re

from tests.pipeline.test_acknowledge import bot_comments
from tests.support.harness import REPO

HOSTILE_CONFIG = 'workers:\n  "x`@alice\\n- [x] approved #1 <img src=x>":\n    max_turns: "`@bob` lots"\n'


def _outside_code(markdown: str) -> str:
    return "\n".join(re.sub(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", "§", line) for line in markdown.split("\n"))


async def test_a_hostile_config_is_reported_inert(bot, github):
    github.push_files(REPO, "main", {".github/agentvine.yml": HOSTILE_CONFIG})
    issue = github.add_issue(REPO, title="x", user="alice")
    await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle()
    (comment,) = bot_comments(github, issue["number"])
    (run,) = github.check_runs_for(REPO)
    for body in (comment["body"], run["output"]["summary"]):
        outside = _outside_code(body)
        assert re.findall(r"(?<!\w)@[A-Za-z0-9][\w-]*", outside) == [], body
        assert re.findall(r"#\d+", outside) == [] and not re.search(r"^\s*- \[x\]", body, re.M) and "<img" not in outside, body
