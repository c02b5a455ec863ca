"""Publishing a review against the GitHub fake: inline comments land on diff lines GitHub accepts,
with suggested changes GitHub can commit on exactly their lines; the rest go into the review's body,
and a refused line never loses the review. Every request is validated against GitHub's OpenAPI
description."""

from __future__ import annotations

import pytest

from app.fakes.github.testing import running_fake
from app.github.client import GitHubClients
from app.github.ops import RepoOps
from app.pipeline.review.diff import commentable_lines
from app.pipeline.review.prompt import fetch_pull_files, render_diff_for_prompt
from app.domain.findings import TrackedFinding
from app.domain.job import Figures
from app.pipeline.review.incremental import Scope, Sorted
from app.pipeline.review.publish import ReviewRequest, check_annotations, publish_review
from app.pipeline.review.summary import Summary, review_body

REPO = "octo-org/hello"
OWNER, NAME = REPO.split("/")
INSTALLATION = 1001

ORIGINAL = "".join(f"line {i}\n" for i in range(1, 31))
# Line 10 is replaced by two lines (new lines 10 and 11); lines 7-9 and 12-14 are context.
CHANGED = ORIGINAL.replace("line 10\n", "line ten\nline ten and a half\n")


@pytest.fixture
async def github(tmp_path):
    async with running_fake(tmp_path) as fake:
        fake.add_installation(INSTALLATION, "octo-org", account_type="Organization")
        fake.add_repo(REPO, installation_id=INSTALLATION, files={"README.md": "# hello\n", "src/app.py": ORIGINAL})
        fake.add_user("alice")
        fake.set_permission(REPO, "alice", "write")
        yield fake
        fake.assert_no_violations()


@pytest.fixture
async def api(github):
    clients = GitHubClients(app_id=github.app_id, private_key_pem=github.private_key_pem, base_url=github.url)
    try:
        yield clients.for_installation(INSTALLATION)
    finally:
        await clients.close()


def open_pull(github, files: dict[str, str]) -> tuple[dict, str]:
    sha = github.push_files(REPO, "topic", files, message="Change things")
    pull = github.add_pull(REPO, head="topic", base="main", title="Change things", user="alice")
    return pull, sha


ADDED = TrackedFinding(path="src/app.py", line=10, severity="critical", message="`ten` is spelled out; use 10.")
CONTEXT = TrackedFinding(path="src/app.py", line=13, severity="minor", message="This line deserves a comment.")
OUTSIDE = TrackedFinding(path="src/app.py", line=25, severity="nit", message="Unrelated: dead code here.")


def request(sha: str, files: list[dict], *findings: TrackedFinding, event: str = "COMMENT") -> ReviewRequest:
    def body(outside: list[TrackedFinding]) -> str:
        sorted_ = Sorted(list(findings), [], [], [], [])
        return review_body(Summary("Mostly fine.", Scope("full", "first", files), sha, sorted_, Figures(), "m"), outside)
    return ReviewRequest(pull_number=0, commit_sha=sha, event=event, findings=list(findings), files=files, body=body)


async def publish(api, pull: dict, sha: str, files: list[dict], *findings: TrackedFinding, event: str = "COMMENT"):
    req = request(sha, files, *findings, event=event)
    req.pull_number = pull["number"]
    return await publish_review(RepoOps(api, OWNER, NAME), req)


async def test_inline_comments_on_diff_lines_and_the_rest_in_the_body(github, api):
    pull, sha = open_pull(github, {"src/app.py": CHANGED, "docs/new.md": "# New\n\nText.\n"})

    files = await fetch_pull_files(RepoOps(api, OWNER, NAME), pull["number"])
    assert {f["filename"]: f["status"] for f in files} == {"src/app.py": "modified", "docs/new.md": "added"}
    lines = commentable_lines(files)
    assert lines["src/app.py"] == set(range(7, 15)) and lines["docs/new.md"] == {1, 2, 3}
    prompt_diff = render_diff_for_prompt(files)
    assert "### src/app.py (modified, +2 -1)" in prompt_diff and "+line ten and a half" in prompt_diff

    published = await publish(api, pull, sha, files, ADDED, CONTEXT, OUTSIDE)

    (review,) = github.reviews
    assert published.review_id == review["id"] and published.html_url == review["html_url"]
    assert (published.inline, published.outside_diff) == (2, [OUTSIDE])
    assert review["state"] == "COMMENTED" and review["commit_id"] == sha
    assert review["user"]["login"] == "agentvine[bot]"
    assert review["body"].startswith("### 🌱 AgentVine review of the whole pull request\n\nMostly fine.")
    assert "`src/app.py:25`" in review["body"] and "Unrelated: dead code here." in review["body"]
    assert "src/app.py:10" not in review["body"] and "src/app.py:13" not in review["body"]

    comments = sorted(github.review_comments, key=lambda c: c["line"])
    assert [(c["path"], c["line"], c["side"]) for c in comments] == [("src/app.py", 10, "RIGHT"), ("src/app.py", 13, "RIGHT")]
    assert comments[0]["body"] == "**🔴 Critical** · `ten` is spelled out; use 10."
    assert comments[1]["body"] == "**🟡 Minor** · This line deserves a comment."
    assert all(c["pull_request_review_id"] == review["id"] and c["commit_id"] == sha for c in comments)

    # The same findings as check-run annotations, accepted by the fake's check-runs schema.
    run = await api.post("/repos/{owner}/{repo}/check-runs", {"owner": OWNER, "repo": NAME}, data={
        "name": "AgentVine · review", "head_sha": sha, "status": "completed", "conclusion": "failure",
        "output": {"title": "Review", "summary": "3 findings", "annotations": check_annotations([ADDED, CONTEXT, OUTSIDE])},
    })
    assert run["output"]["annotations_count"] == 3
    assert [a["annotation_level"] for a in github.check_run_annotations(run["id"])] == ["failure", "warning", "notice"]

    (post,) = [c for c in github.calls if c.method == "POST" and c.path.endswith("/reviews")]
    assert post.status == 200


# Lines 10-11 (added) replaced by two lines, line 13 (context) by one: suggestions GitHub offers to commit.
TWO_LINES = TrackedFinding(path="src/app.py", line=11, start_line=10, severity="major", message="Keep the numbers.",
                           suggestion="line 10\nline 10.5")
ONE_LINE = TrackedFinding(path="src/app.py", line=13, severity="nit", message="Say why.",
                          suggestion="line 12  # checked by hand")
DELETE = TrackedFinding(path="docs/new.md", line=3, start_line=2, severity="minor", message="Empty section.", suggestion="")


async def test_suggestions_github_accepts_and_commits_exactly_on_their_lines(github, api):
    pull, sha = open_pull(github, {"src/app.py": CHANGED, "docs/new.md": "# New\n\nText.\n"})
    files = await fetch_pull_files(RepoOps(api, OWNER, NAME), pull["number"])
    published = await publish(api, pull, sha, files, TWO_LINES, ONE_LINE, DELETE)
    assert published.inline == 3 and published.outside_diff == []

    # Accepted as GitHub takes them (the fake checks line, start_line and side against the diff's hunks).
    comments = {c["line"]: c for c in github.review_comments if c["path"] == "src/app.py"}
    assert (comments[11]["start_line"], comments[11]["start_side"], comments[11]["side"]) == (10, "RIGHT", "RIGHT")
    assert comments[11]["body"] == "**🟠 Major** · Keep the numbers.\n\n```suggestion\nline 10\nline 10.5\n```"
    assert comments[13]["start_line"] is None and "```suggestion\nline 12  # checked by hand\n```" in comments[13]["body"]

    # "Commit suggestion" replaces exactly the commented lines, and nothing else.
    for comment in sorted(github.review_comments, key=lambda c: (c["path"], c["line"])):
        github.apply_suggestion(REPO, comment["id"], user="alice")
    expected = ORIGINAL.replace("line 10\n", "line 10\nline 10.5\n").replace("line 12\n", "line 12  # checked by hand\n")
    assert github.read_file(REPO, "topic", "src/app.py") == expected
    assert github.read_file(REPO, "topic", "docs/new.md") == "# New\n"


async def test_request_changes_is_a_review_github_accepts(github, api):
    pull, sha = open_pull(github, {"src/app.py": CHANGED})
    files = await fetch_pull_files(RepoOps(api, OWNER, NAME), pull["number"])
    published = await publish(api, pull, sha, files, ADDED, event="REQUEST_CHANGES")
    (review,) = github.reviews
    assert (published.event, review["state"]) == ("REQUEST_CHANGES", "CHANGES_REQUESTED")
    await RepoOps(api, OWNER, NAME).dismiss_review(pull["number"], review["id"], "fixed")
    assert github.reviews[0]["state"] == "DISMISSED" and github.review_dismissals == {review["id"]: "fixed"}


async def test_a_line_github_refuses_falls_back_to_the_body(github, api):
    pull, first_sha = open_pull(github, {"src/app.py": CHANGED})
    files = await fetch_pull_files(RepoOps(api, OWNER, NAME), pull["number"])
    # The branch moves on after the files were read: line 10 is no longer part of the diff at
    # the new head, but the stale file list still says it is.
    new_sha = github.push_files(REPO, "topic", {"src/app.py": ORIGINAL.replace("line 20\n", "line twenty\n")})
    assert 10 in commentable_lines(files)["src/app.py"]

    published = await publish(api, pull, new_sha, files, ADDED)

    posts = [c for c in github.calls if c.method == "POST" and c.path.endswith("/reviews")]
    assert [c.status for c in posts] == [422, 200]
    assert "must be part of the diff" in str(posts[0].response_json)
    assert "comments" in posts[0].request_json and "comments" not in posts[1].request_json
    (review,) = github.reviews
    assert github.review_comments == []
    assert "`src/app.py:10`" in review["body"] and "use 10." in review["body"]
    assert (published.review_id, published.inline, published.outside_diff) == (review["id"], 0, [ADDED])
    assert first_sha != new_sha


async def test_a_path_outside_the_pull_request_goes_to_the_body(github, api):
    pull, sha = open_pull(github, {"src/app.py": CHANGED})
    files = await fetch_pull_files(RepoOps(api, OWNER, NAME), pull["number"])
    elsewhere = TrackedFinding(path="README.md", line=1, severity="minor", message="Title is vague.")
    published = await publish(api, pull, sha, files, elsewhere)
    (review,) = github.reviews
    assert published.inline == 0 and github.review_comments == []
    assert "`README.md:1`" in review["body"]
    assert len([c for c in github.calls if c.path.endswith("/reviews")]) == 1


async def test_a_clean_review_has_a_body_and_no_comments(github, api):
    pull, sha = open_pull(github, {"src/app.py": CHANGED})
    files = await fetch_pull_files(RepoOps(api, OWNER, NAME), pull["number"])
    published = await publish(api, pull, sha, files)
    (review,) = github.reviews
    assert "**Findings:** none" in review["body"] and published.inline == 0 and published.outside_diff == []


async def test_files_are_paginated(github, api):
    pull, _ = open_pull(github, {f"many/f{i:03}.txt": f"{i}\n" for i in range(130)})
    files = await fetch_pull_files(RepoOps(api, OWNER, NAME), pull["number"])
    assert len(files) == 130 and len({f["filename"] for f in files}) == 130
    pages = [c for c in github.calls if c.path.endswith(f"/pulls/{pull['number']}/files")]
    assert len(pages) == 2 and all(c.query.get("per_page") == "100" for c in pages)
