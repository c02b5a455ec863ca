"""Pull requests: create, get, update, list, files (from the real git diff). Reviews: handlers_reviews.py."""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from . import render
from .rest import (
    ApiRequest,
    ApiResponse,
    Handler,
    custom_error,
    not_found,
    paginate,
    unprocessable,
)

if TYPE_CHECKING:
    from .state import FakeGitHub, Repo

DOC = "https://docs.github.com/rest/pulls/pulls"


def _branch(repo: "Repo", spec: str) -> str | None:
    """`branch` or `owner:branch` of this repository (forks are not modelled); None if foreign."""
    if ":" in spec:
        owner, branch = spec.split(":", 1)
        return branch if owner.lower() == repo.owner.lower() else None
    return spec


def _open_duplicate(fake: "FakeGitHub", repo: "Repo", head: str, base: str, other_than: int | None = None) -> bool:
    return any(
        p["state"] == "open" and p["head"]["ref"] == head and p["base"]["ref"] == base and p["number"] != other_than
        for (r, _), p in list(fake._pull_index.items())  # may run in a worker thread
        if r == repo.full_name.lower()
    )


def _pull(fake: "FakeGitHub", req: ApiRequest) -> dict[str, Any] | None:
    assert req.repo is not None
    return fake._pull_index.get((req.repo.full_name.lower(), req.int_param("pull_number")))


DRAFTS_UNSUPPORTED = "Draft pull requests are not supported in this repository."


async def create(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    repo, body, actor = req.repo, req.body, req.actor
    assert repo is not None and actor is not None
    head, base = _branch(repo, body["head"]), body["base"]

    def check() -> ApiResponse | None:
        if head is None or repo.git.resolve(head) is None or repo.git.ref_sha(f"refs/heads/{head}") is None:
            return unprocessable([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        if repo.git.ref_sha(f"refs/heads/{base}") is None:
            return unprocessable([{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        if _open_duplicate(fake, repo, head, base):
            return custom_error(f"A pull request already exists for {repo.owner}:{head}.", "PullRequest")
        head_sha, base_sha = repo.git.resolve(head), repo.git.resolve(base)
        if head_sha == base_sha or repo.git.is_ancestor(head_sha, base_sha):
            return custom_error(f"No commits between {base} and {head}", "PullRequest")
        return None

    refused = await asyncio.to_thread(check)
    if refused:
        return refused
    if body.get("draft") and not repo.draft_pulls:  # GitHub's words (no `errors` list)
        return ApiResponse(422, render.validation_failed(None, DRAFTS_UNSUPPORTED, doc=f"{render.DOCS}/pulls/pulls#create-a-pull-request"))
    issue = None
    if "issue" in body:
        issue = fake._issue_index.get((repo.full_name.lower(), body["issue"]))
        if issue is None or "pull_request" in issue:
            return unprocessable([{"resource": "PullRequest", "field": "issue", "code": "invalid"}])
    elif not body.get("title"):
        return unprocessable([{"resource": "Issue", "field": "title", "code": "missing_field"}])
    title = body.get("title") or (issue or {}).get("title", "")
    text = body.get("body") if "body" in body else (issue or {}).get("body")
    pull = fake.create_pull(repo, title=title, body=text, author=actor, head=head, base=base,
                            draft=bool(body.get("draft", False)),
                            maintainer_can_modify=bool(body.get("maintainer_can_modify", True)), issue=issue)
    await asyncio.to_thread(fake.refresh_pull, repo, pull)
    return ApiResponse(201, copy.deepcopy(pull), {"Location": pull["url"]})


async def get(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    pull = _pull(fake, req)
    if pull is None:
        return not_found(f"{DOC}#get-a-pull-request")
    assert req.repo is not None
    await asyncio.to_thread(fake.refresh_pull, req.repo, pull)
    return ApiResponse(200, copy.deepcopy(pull))


async def update(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    pull = _pull(fake, req)
    repo, body = req.repo, req.body or {}
    if pull is None:
        return not_found(f"{DOC}#update-a-pull-request")
    assert repo is not None
    issue = fake._issue_index[(repo.full_name.lower(), pull["number"])]
    if "base" in body and repo.git.ref_sha(f"refs/heads/{body['base']}") is None:
        return unprocessable([{"resource": "PullRequest", "field": "base", "code": "invalid"}])
    if body.get("state") == "open" and pull["state"] == "closed":
        if pull["merged"]:
            return custom_error("Cannot reopen a merged pull request", "PullRequest")
        if repo.git.resolve(pull["head"]["ref"]) is None:
            return custom_error(f"state cannot be changed. The {pull['head']['ref']} branch has been deleted.", "PullRequest")
        if _open_duplicate(fake, repo, pull["head"]["ref"], body.get("base", pull["base"]["ref"]), pull["number"]):
            return custom_error(f"A pull request already exists for {repo.owner}:{pull['head']['ref']}.", "PullRequest")
    for key in ("title", "body", "maintainer_can_modify"):
        if key in body:
            pull[key] = body[key]
            if key in ("title", "body"):
                issue[key] = body[key]
    if "base" in body:
        pull["base"]["ref"] = body["base"]
        pull["base"]["label"] = f"{repo.owner}:{body['base']}"
    if "state" in body and body["state"] != pull["state"]:
        closing = body["state"] == "closed"
        stamp = render.now_iso() if closing else None
        pull["state"] = issue["state"] = body["state"]
        pull["closed_at"] = issue["closed_at"] = stamp
        issue["closed_by"] = copy.deepcopy(req.actor) if closing else None
    fake.touch(pull)
    fake.touch(issue)
    await asyncio.to_thread(fake.refresh_pull, repo, pull)
    return ApiResponse(200, copy.deepcopy(pull))


async def list_pulls(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    repo = req.repo
    assert repo is not None
    state = req.query.get("state", "open")
    head = req.query.get("head")
    base = req.query.get("base")
    pulls = [p for (r, _), p in fake._pull_index.items() if r == repo.full_name.lower()]
    if state != "all":
        pulls = [p for p in pulls if p["state"] == state]
    if head:
        # GitHub filters on `user:ref-name`; a bare branch name is read as this repository's owner.
        owner, _, branch = head.rpartition(":")
        pulls = [p for p in pulls if p["head"]["ref"] == branch and (not owner or owner.lower() == repo.owner.lower())]
    if base:
        pulls = [p for p in pulls if p["base"]["ref"] == base]
    sort = req.query.get("sort", "created")
    direction = req.query.get("direction", "desc" if sort == "created" else "asc")
    key = {"created": "created_at", "updated": "updated_at", "popularity": "comments", "long-running": "created_at"}[sort]
    pulls.sort(key=lambda p: (p[key], p["number"]), reverse=direction == "desc")
    for p in pulls:
        await asyncio.to_thread(fake.refresh_pull, repo, p)
    return paginate(req, [render.pull_simple(copy.deepcopy(p)) for p in pulls])


async def list_files(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    pull = _pull(fake, req)
    repo = req.repo
    if pull is None:
        return not_found(f"{DOC}#list-pull-requests-files")
    assert repo is not None
    await asyncio.to_thread(fake.refresh_pull, repo, pull)
    changes = await asyncio.to_thread(repo.git.diff, pull["base"]["sha"], pull["head"]["sha"])
    entries = [render.diff_entry(fake.urls, repo.full_name, pull["head"]["sha"], c) for c in changes]
    return paginate(req, entries)


HANDLERS: dict[str, Handler] = {
    "pulls/create": create,
    "pulls/get": get,
    "pulls/update": update,
    "pulls/list": list_pulls,
    "pulls/list-files": list_files,
}
