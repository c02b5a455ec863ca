"""Hostile file names and texts through the real render functions: what reaches GitHub stays inert
(one code span, one table cell, one list item), pings and backlinks no one, and fits GitHub's limits."""

from __future__ import annotations

import re

import pytest

from app.domain.findings import TrackedFinding
from app.domain.job import Figures, Job, Outcome, Trigger
from app.domain.untrusted import MAX_ANNOTATION_TITLE, MAX_CHECK_TEXT, MAX_COMMENT, ZWSP, size
from app.pipeline.present import render
from app.pipeline.review.incremental import Scope, Sorted
from app.pipeline.review.publish import check_annotations, inline_body
from app.pipeline.review.summary import Summary, review_body

HOSTILE = ["x](https://evil)", "a|b", "`", "<img src=x>", "\n- [x] approved", "@alice", "#1", "`@org/team`",
           "x`@bob", "y" * 3000, "<!-- hide", "```"]
URL = "https://agentvine.example"


def _job(**update) -> Job:
    job = Job(delivery_id="d", installation_id=1, repo="o/r", issue_number=3, requester="alice",
              trigger=Trigger(kind="label", label="agentvine:bugfix"), worker="bugfix", level="supervised", model="m")
    return job.model_copy(update=update)


def _code_spans_removed(line: str) -> str:
    return re.sub(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", "§", line)


def _live(markdown: str, ours: tuple[str, ...] = ()) -> list[str]:
    """@names and #refs outside code spans that would link, except the ones our own texts put there."""
    outside = "\n".join(_code_spans_removed(line) for line in markdown.split("\n"))
    found = re.findall(r"(?<!\w)@[A-Za-z0-9][\w/-]*|#\d+", outside)
    return [f for f in found if f not in ours]


def _files_section(body: str) -> list[str]:
    return body.split("### Files changed\n", 1)[1].split("\n\n", 1)[0].split("\n")


def test_hostile_file_names_stay_one_code_span_each_in_the_pr_body():
    outcome = Outcome(conclusion="success", title="", summary="cc @carol, fixes #9 and other/repo#4",
                      files=HOSTILE)
    body = render.pull_request_body(_job(), outcome, "https://github.com/o/r/runs/1")
    items = _files_section(body)
    assert len(items) == len(HOSTILE)  # each name is one list item, none adds a line
    for item in items:
        assert item.startswith("- ") and _code_spans_removed(item) == "- §", item
    assert _live(body, ours=("#3", "@alice")) == []
    assert "](https://evil)" not in _code_spans_removed(body)


def test_the_pr_body_keeps_its_table_whatever_the_configured_model():
    body = render.pull_request_body(_job(model="m|x`@y"), Outcome(conclusion="success", title=""), "u")
    (row,) = [line for line in body.split("\n") if line.startswith("| Model |")]
    assert len(re.findall(r"(?<!\\)(?:\\\\)*\|", row)) == 3


def test_a_summary_that_opens_a_fence_or_a_comment_cannot_swallow_the_rest_of_the_pr_body():
    for summary in ("```\nunclosed", "<!-- hidden"):
        body = render.pull_request_body(_job(), Outcome(conclusion="success", title="", summary=summary, files=["a"]), "u")
        tail = body.split("### Files changed", 1)[0]
        assert tail.count("```") % 2 == 0 and "<!--" not in tail


def test_the_refused_paths_list_holds_each_hostile_name_in_one_item():
    from app.agent.boundary.changeset import ChangeSet

    changes = ChangeSet(refused=[(name, "is outside allowed_paths") for name in HOSTILE])
    lines = changes.refusals_text().split("\n")
    assert len(lines) == len(HOSTILE)
    assert all(_code_spans_removed(line) == "- §: is outside allowed_paths" for line in lines)


def test_a_bodies_over_githubs_limits_are_cut_and_say_where_the_rest_is():
    outcome = Outcome(conclusion="success", title="", summary="`@x` " * 40_000, files=[f"f{i}" for i in range(100)])
    body = render.pull_request_body(_job(), outcome, "https://github.com/o/r/runs/1")
    assert size(body) <= MAX_COMMENT and "cut" in body and "https://github.com/o/r/runs/1" in body
    assert _live(body, ours=("#3", "@alice")) == []
    job = _job(outcome=Outcome(conclusion="failure", title="t\nx", summary="s" * 70_000, detail="d" * 70_000))
    final = render.check_run_final(job, render.Progress())
    assert size(final["output"]["summary"]) <= MAX_CHECK_TEXT and "\n" not in final["output"]["title"]
    comment = render.tracking_comment(job, prefix="@agentvine", public_url=URL)
    assert size(comment) <= MAX_COMMENT and f"{URL}/jobs/{job.id}" in comment.rsplit("\n\n", 1)[-1]


def test_activity_lines_stay_one_list_item_each():
    progress = render.Progress(activity=["Ran `x`\n- [x] approved @bob", "Edited `a` #5"])
    comment = render.tracking_comment(_job(), prefix="@agentvine", public_url=URL, progress=progress)
    activity = comment.split("**Latest activity**\n\n", 1)[1].split("\n\n", 1)[0].split("\n")
    assert len(activity) == 2 and _live("\n".join(activity)) == []


def test_the_stderr_tail_lands_in_one_code_span():
    from app.pipeline.outcome import stderr_detail

    detail = stderr_detail(1, "boom\n# Heading\n<img src=x> [x](https://evil) @alice #7\n")
    assert "\n" not in detail and _live(detail) == [] and "](https://evil)" not in _code_spans_removed(detail)


def test_questions_stay_quoted():
    quoted = render.quote("why?\n\n# not a heading\r\n@alice")
    assert all(line.startswith(">") for line in quoted.split("\n")) and _live(quoted) == []


FINDING_MESSAGE = "x\n- [x] approved\n# Heading\n@alice and other/repo#1"


def _summary(new: list[TrackedFinding], agent_summary: str = "s") -> Summary:
    return Summary(agent_summary, Scope("full", "first", [{"filename": "a`b.py"}]), "a" * 40,
                   Sorted(new, [], [], [], []), Figures(turns=3, cost_usd=0.1), "m")


@pytest.mark.parametrize("path", ["a`b.py", "``x", "a|b.py", "@carol.py"])
def test_review_findings_with_hostile_paths_stay_one_list_item(path):
    finding = TrackedFinding(path=path, line=1, severity="minor", message=FINDING_MESSAGE)
    body = review_body(_summary([finding]), [finding])
    (item,) = [part for part in body.split("\n\n") if part.startswith("- **")]
    first, *rest = item.split("\n")
    assert first.startswith("- **🟡 Minor** ") and all(line.startswith("  ") for line in rest)
    assert not any(re.match(r" *([-*+>#]|\d+[.)])", line[2:]) for line in rest)
    assert _live(body) == []


def test_an_inline_finding_and_its_suggestion_ping_no_one_and_the_code_cannot_leave_its_block():
    code = "x = '@alice #1'\n```\n- [x] approved\n````"
    finding = TrackedFinding(path="a.py", line=1, severity="nit", message="@bob see #2", suggestion=code)
    body = inline_body(finding, with_suggestion=True)
    message, block = body.split("\n\n", 1)
    assert _live(message) == []
    # The fence is longer than any run of backticks in the code, so the code ends only at the fence.
    assert block.startswith("`````suggestion\n") and block.endswith("\n`````") and block[16:-6] == code


def test_annotations_are_plain_one_line_titles_within_githubs_limits():
    finding = TrackedFinding(path="a.py", line=1, severity="major", message="\u202e\tt" * 300 + "\nrest")
    (annotation,) = check_annotations([finding])
    assert len(annotation["title"]) <= MAX_ANNOTATION_TITLE and not re.search(r"[\t\n\u202e]", annotation["title"])
    assert size(annotation["message"]) <= 64_000
    earlier = TrackedFinding(path="a", line=1, severity="minor", message="m" * 70_000)
    (annotation,) = check_annotations([], [earlier])
    assert size(annotation["message"]) <= 64_000 and annotation["title"].endswith("(earlier review)")
    assert len(annotation["title"]) <= MAX_ANNOTATION_TITLE


def test_defusal_uses_an_invisible_character():
    assert ZWSP == "\u200b"


def test_help_shows_hostile_label_names_as_code():
    from app.domain.config import load_default

    config = load_default()
    rule = next(iter(config.labels.values()))
    config = config.model_copy(update={"labels": {"x`@alice #2": rule}})
    text = render.help_text(config)
    labels = next(line for line in text.split("\n") if line.startswith("Labels:"))
    assert _live(labels) == [] and "`` x`@\u200balice #\u200b2 ``" in labels


def test_a_hostile_step_command_stays_text_in_the_check_runs_html_summary():
    """Inside <details><summary> GitHub parses no Markdown: a backtick span would protect nothing, so the
    command (the repository's config) and the error (our words, with names in them) are escaped as HTML."""
    from app.domain.steps import StepResult
    from app.pipeline.present.steps import steps_section

    hostile = '<a href="https://evil.example">Re-run</a> <img src=x onerror=alert(1)> @mona #12 `x`'
    steps = [StepResult(phase="setup", command=hostile, exit_code=1, tail="boom\n"),
             StepResult(phase="verify", command="make test", error="image <b>x</b> for @mona")]
    section = steps_section(steps)
    summaries = [line for line in section.splitlines() if line.startswith("<details>")]
    assert len(summaries) == 2
    for line in summaries:
        inner = line.removeprefix("<details><summary>").removesuffix("</summary>")
        assert "<" not in inner.replace("<code>", "").replace("</code>", "")  # no tag but ours
        assert "@mona" not in inner and "#12" not in inner  # no mention, no reference
    assert "&lt;a href=&quot;https://evil.example&quot;&gt;" in summaries[0]
    # The error's text, below the summary, is in a code block: shown, not rendered.
    assert "```text\ncould not run (image <b>x</b> for @mona)\n```" in section
