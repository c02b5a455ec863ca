"""The GitHub fake on what reviews need beyond comments on lines: multi-line comments within one hunk,
suggested changes only where GitHub could commit them (and committing one), comparing two commits,
and dismissing a review. Every answer is validated against GitHub's OpenAPI description."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from gidgethub import BadRequest

from app.fakes.github import FakeGitHub
from app.fakes.github.handlers_reviews import (SUGGESTION_LEFT, SUGGESTION_MANY, SUGGESTION_NOT_ON_LINES,
                                               SUGGESTION_UNCLOSED)
from app.fakes.github.suggestions import suggestion_blocks
from app.fakes.github.testing import running_fake
from tests.fakes.test_github_fake import INSTALLATION, REPO, installation_gh

BASE = "".join(f"line {i}\n" for i in range(1, 31))
# Two hunks: lines 2-8 (line 5 changed) and 20-26 (line 23 changed) on the RIGHT side.
HEAD = BASE.replace("line 5\n", "line five\n").replace("line 23\n", "line twenty-three\n")


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeGitHub]:
    async with running_fake(tmp_path) as fake:
        fake.add_installation(INSTALLATION, "octo-org", account_type="Organization")
        fake.add_repo(REPO, installation_id=INSTALLATION, files={"a.txt": BASE})
        fake.add_user("alice")
        fake.set_permission(REPO, "alice", "write")
        fake.push_files(REPO, "topic", {"a.txt": HEAD})
        fake.add_pull(REPO, head="topic", base="main", title="Words", user="alice")
        yield fake
        fake.assert_no_violations()


@pytest.fixture
async def gh(fake: FakeGitHub) -> AsyncIterator:
    async with aiohttp.ClientSession() as session:
        yield await installation_gh(fake, session)


async def refused(gh, *comments: dict) -> list[str]:
    with pytest.raises(BadRequest) as info:
        await gh.post(f"/repos/{REPO}/pulls/1/reviews", data={"event": "COMMENT", "body": "r", "comments": list(comments)})
    assert info.value.status_code == 422
    return list(info.value.errors)


def suggest(code: str, fence: str = "```") -> str:
    return f"Use numbers.\n\n{fence}suggestion\n{code}\n{fence}"


async def test_a_multi_line_comment_stays_within_one_hunk(gh, fake):
    assert await refused(gh, {"path": "a.txt", "start_line": 5, "line": 23, "side": "RIGHT", "body": "both"}) == [
        "Pull request review thread start line must be part of the same hunk as the line"]
    await gh.post(f"/repos/{REPO}/pulls/1/reviews", data={"event": "COMMENT", "body": "r", "comments": [
        {"path": "a.txt", "start_line": 4, "line": 6, "start_side": "RIGHT", "side": "RIGHT", "body": "three lines"}]})
    assert [(c["start_line"], c["line"]) for c in fake.review_comments] == [(4, 6)]


@pytest.mark.parametrize("comment, problem", [
    ({"line": 5, "side": "LEFT"}, SUGGESTION_LEFT),
    ({"start_line": 4, "line": 6, "start_side": "LEFT", "side": "RIGHT"}, SUGGESTION_LEFT),
    ({"position": 2}, SUGGESTION_NOT_ON_LINES),
    ({"line": 5, "side": "RIGHT", "body": "Fix:\n\n```suggestion\nline 5\n"}, SUGGESTION_UNCLOSED),
    ({"line": 5, "side": "RIGHT", "body": suggest("line 5") + "\n\n" + suggest("line 5.0")}, SUGGESTION_MANY),
], ids=["left-side", "starts-on-the-left", "by-position", "unclosed", "two-blocks"])
async def test_a_suggestion_github_could_not_commit_is_refused(gh, comment, problem):
    body = comment.pop("body", suggest("line 5"))
    assert await refused(gh, {"path": "a.txt", **comment, "body": body}) == [problem]


async def test_a_committed_suggestion_replaces_exactly_its_lines(gh, fake):
    await gh.post(f"/repos/{REPO}/pulls/1/reviews", data={"event": "COMMENT", "body": "r", "comments": [
        {"path": "a.txt", "start_line": 4, "line": 6, "side": "RIGHT", "body": suggest("line 4 to 6, with ``` inside", "````")},
        {"path": "a.txt", "line": 23, "side": "RIGHT", "body": suggest("line 23")},
    ]})
    several, single = sorted(fake.review_comments, key=lambda c: c["line"])
    before = fake.head_sha(REPO, "topic")
    fake.apply_suggestion(REPO, several["id"], user="alice")
    assert fake.read_file(REPO, "topic", "a.txt") == HEAD.replace("line 4\nline five\nline 6\n", "line 4 to 6, with ``` inside\n")
    # The other one was made on the older head; its lines moved up by two and so no longer match.
    with pytest.raises(ValueError, match="outdated"):
        fake.apply_suggestion(REPO, single["id"], user="alice")
    assert fake.repo(REPO).git.is_ancestor(before, fake.head_sha(REPO, "topic"))


def test_suggestion_blocks_are_read_as_commonmark_fences():
    assert suggestion_blocks("a\n```suggestion\nx\n  y\n```\nb") == [["x", "  y"]]
    assert suggestion_blocks("~~~suggestion\n```\n~~~") == [["```"]]  # a backtick line inside a tilde fence
    assert suggestion_blocks("````suggestion\n```\nx\n````") == [["```", "x"]]
    assert suggestion_blocks("```suggestion\n```") == [[]]  # an empty block deletes the lines
    assert suggestion_blocks("```python\nx\n```\n```suggestion\nopen") == [None]
    assert suggestion_blocks("no block here ```suggestion") == []


async def test_compare_says_how_two_commits_relate_and_what_changed(gh, fake):
    first = fake.head_sha(REPO, "topic")
    second = fake.push_files(REPO, "topic", {"b.txt": "new\n"}, message="Add b")
    ahead = await gh.getitem(f"/repos/{REPO}/compare/{first}...{second}")
    assert (ahead["status"], ahead["ahead_by"], ahead["behind_by"], ahead["total_commits"]) == ("ahead", 1, 0, 1)
    assert [c["sha"] for c in ahead["commits"]] == [second] and ahead["commits"][0]["commit"]["message"] == "Add b"
    assert [(f["filename"], f["status"], f["patch"]) for f in ahead["files"]] == [("b.txt", "added", "@@ -0,0 +1 @@\n+new")]
    assert (await gh.getitem(f"/repos/{REPO}/compare/{second}...{second}"))["status"] == "identical"
    assert (await gh.getitem(f"/repos/{REPO}/compare/{second}...{first}"))["status"] == "behind"
    rewritten = fake.repo(REPO).git.commit_files("topic", {"a.txt": BASE}, "Rewrite", fake.head_sha(REPO, "main"))
    diverged = await gh.getitem(f"/repos/{REPO}/compare/{second}...{rewritten}")
    assert (diverged["status"], diverged["ahead_by"], diverged["behind_by"]) == ("diverged", 1, 2)
    with pytest.raises(BadRequest) as info:
        await gh.getitem(f"/repos/{REPO}/compare/{'0' * 40}...{second}")
    assert info.value.status_code == 404


async def test_only_an_approval_or_a_change_request_can_be_dismissed(gh, fake):
    url = f"/repos/{REPO}/pulls/1/reviews"
    changes = await gh.post(url, data={"event": "REQUEST_CHANGES", "body": "Fix it"})
    comment = await gh.post(url, data={"event": "COMMENT", "body": "Note"})
    dismissed = await gh.put(f"{url}/{changes['id']}/dismissals", data={"message": "Fixed", "event": "DISMISS"})
    assert dismissed["state"] == "DISMISSED" and fake.review_dismissals == {changes["id"]: "Fixed"}
    with pytest.raises(BadRequest) as info:
        await gh.put(f"{url}/{comment['id']}/dismissals", data={"message": "No"})
    assert info.value.status_code == 422 and "commented" in str(info.value.errors)
    with pytest.raises(BadRequest) as missing:
        await gh.put(f"{url}/999/dismissals", data={"message": "No"})
    assert missing.value.status_code == 404
