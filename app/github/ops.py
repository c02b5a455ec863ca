"""Every GitHub call AgentVine makes about a repository, by name.

Stages say what they do (`comment`, `create_check_run`, `open_pull_for`) instead of spelling out URL
templates and `{"owner": ..., "repo": ...}` each time, and links come from what GitHub answers
(`html_url`), so nothing assumes github.com (GitHub Enterprise Server has its own host)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import gidgethub


class RestAPI(Protocol):
    """What the operations need of a client: app/github/client.InstallationAPI, or a test's stand-in."""

    async def getitem(self, url: str, url_vars: dict[str, Any] | None = None, **kw: Any) -> Any: ...
    async def post(self, url: str, url_vars: dict[str, Any] | None = None, *, data: Any, **kw: Any) -> Any: ...
    async def patch(self, url: str, url_vars: dict[str, Any] | None = None, *, data: Any, **kw: Any) -> Any: ...
    async def put(self, url: str, url_vars: dict[str, Any] | None = None, *, data: Any = b"", **kw: Any) -> Any: ...
    def getiter(self, url: str, url_vars: dict[str, Any] | None = None, **kw: Any) -> AsyncIterator[Any]: ...


REVIEW_EVENTS = ("COMMENT", "REQUEST_CHANGES")  # what AgentVine submits; never APPROVE
BUILT_IN_ROLES = ("admin", "maintain", "write", "triage", "read")  # GitHub's role_name for its own roles
# A custom role's rights are those of its base role: user.permissions says which, from the top.
_RIGHTS = (("admin", "admin"), ("maintain", "maintain"), ("push", "write"), ("triage", "triage"), ("pull", "read"))


def role_of(data: dict) -> str:
    """A person's role from repos/get-collaborator-permission-level's answer: role_name when it is
    a built-in role (it knows maintain and triage, which the legacy `permission` folds into write
    and read); for a custom role (`release-manager`) the built-in role it is based on."""
    role = data.get("role_name")
    if role in BUILT_IN_ROLES:
        return role
    rights = (data.get("user") or {}).get("permissions") or {}
    for flag, name in _RIGHTS:
        if rights.get(flag) is True:
            return name
    legacy = data.get("permission")
    return legacy if legacy in BUILT_IN_ROLES else "none"


def _missing(exc: gidgethub.BadRequest) -> bool:
    return exc.status_code == 404


class RepoOps:
    """The calls about one repository (`owner/name`), made through one installation's client."""

    def __init__(self, api: RestAPI, owner: str, name: str) -> None:
        self.api = api
        self.owner = owner
        self.name = name

    def _vars(self, **extra: Any) -> dict[str, Any]:
        return {"owner": self.owner, "repo": self.name, **extra}

    # --- issues and comments -------------------------------------------------------------------

    async def issue(self, number: int) -> dict:
        return await self.api.getitem("/repos/{owner}/{repo}/issues/{issue_number}", self._vars(issue_number=number))

    def comments(self, issue_number: int) -> AsyncIterator[dict]:
        """The issue's comments, oldest first, page by page."""
        return self.api.getiter("/repos/{owner}/{repo}/issues/{issue_number}/comments",
                                self._vars(issue_number=issue_number))

    async def comment(self, issue_number: int, body: str) -> dict:
        """A new comment on an issue or pull request."""
        return await self.api.post("/repos/{owner}/{repo}/issues/{issue_number}/comments",
                                   self._vars(issue_number=issue_number), data={"body": body})

    async def edit_comment(self, comment_id: int, body: str) -> dict:
        return await self.api.patch("/repos/{owner}/{repo}/issues/comments/{comment_id}",
                                    self._vars(comment_id=comment_id), data={"body": body})

    async def react_to_issue(self, issue_number: int, content: str = "eyes") -> dict:
        return await self.api.post("/repos/{owner}/{repo}/issues/{issue_number}/reactions",
                                   self._vars(issue_number=issue_number), data={"content": content})

    async def react_to_comment(self, comment_id: int, content: str = "eyes") -> dict:
        return await self.api.post("/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
                                   self._vars(comment_id=comment_id), data={"content": content})

    async def react_to_review_comment(self, comment_id: int, content: str = "eyes") -> dict:
        """A reaction on a pull request review comment (a comment on a line of the diff)."""
        return await self.api.post("/repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions",
                                   self._vars(comment_id=comment_id), data={"content": content})

    # --- people, refs and files ----------------------------------------------------------------

    async def permission(self, login: str) -> str:
        """The person's role on the repository ('none' for someone GitHub does not know there)."""
        try:
            data = await self.api.getitem("/repos/{owner}/{repo}/collaborators/{username}/permission",
                                          self._vars(username=login))
        except gidgethub.BadRequest as exc:
            if _missing(exc):
                return "none"
            raise
        return role_of(data)

    async def branch_head(self, branch: str) -> str:
        """The commit a branch points at."""
        ref = await self.api.getitem("/repos/{owner}/{repo}/git/ref/heads/{+branch}", self._vars(branch=branch))
        return ref["object"]["sha"]

    async def file(self, path: str, ref: str) -> Any | None:
        """The contents entry for `path` at `ref` (a file, or a listing for a folder); None when absent."""
        try:
            return await self.api.getitem("/repos/{owner}/{repo}/contents/{+path}{?ref}", self._vars(path=path, ref=ref))
        except gidgethub.BadRequest as exc:
            if _missing(exc):
                return None
            raise

    # --- check runs ----------------------------------------------------------------------------

    async def create_check_run(self, body: dict) -> dict:
        return await self.api.post("/repos/{owner}/{repo}/check-runs", self._vars(), data=body)

    async def check_run(self, check_run_id: int) -> dict:
        return await self.api.getitem("/repos/{owner}/{repo}/check-runs/{check_run_id}", self._vars(check_run_id=check_run_id))

    async def update_check_run(self, check_run_id: int, body: dict) -> dict:
        return await self.api.patch("/repos/{owner}/{repo}/check-runs/{check_run_id}",
                                    self._vars(check_run_id=check_run_id), data=body)

    async def check_runs_on(self, sha: str, *, limit: int) -> list[dict]:
        """Every App's latest check run of each name on commit `sha` (checks/list-for-ref), at most `limit`."""
        runs: list[dict] = []
        async for run in self.api.getiter("/repos/{owner}/{repo}/commits/{ref}/check-runs{?filter,per_page}",
                                          self._vars(ref=sha, filter="latest", per_page=100), iterable_key="check_runs"):
            runs.append(run)
            if len(runs) >= limit:
                break
        return runs

    async def check_run_annotations(self, check_run_id: int, *, limit: int) -> list[dict]:
        """A check run's annotations (checks/list-annotations), at most `limit`."""
        found: list[dict] = []
        async for annotation in self.api.getiter("/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations{?per_page}",
                                                 self._vars(check_run_id=check_run_id, per_page=min(limit, 100))):
            found.append(annotation)
            if len(found) >= limit:
                break
        return found

    # --- pull requests -------------------------------------------------------------------------

    async def pull(self, number: int) -> dict:
        return await self.api.getitem("/repos/{owner}/{repo}/pulls/{pull_number}", self._vars(pull_number=number))

    async def open_pull_for(self, branch: str) -> dict | None:
        """The open pull request whose head is `branch` of this repository, if there is one."""
        async for pull in self.api.getiter("/repos/{owner}/{repo}/pulls{?state,head}",
                                           self._vars(state="open", head=f"{self.owner}:{branch}")):
            return pull
        return None

    async def create_pull(self, *, title: str, head: str, base: str, body: str, draft: bool) -> dict:
        return await self.api.post("/repos/{owner}/{repo}/pulls", self._vars(),
                                   data={"title": title, "head": head, "base": base, "body": body, "draft": draft})

    async def update_pull(self, number: int, *, title: str, body: str) -> dict:
        return await self.api.patch("/repos/{owner}/{repo}/pulls/{pull_number}", self._vars(pull_number=number),
                                    data={"title": title, "body": body})

    async def pull_files(self, number: int, *, limit: int) -> list[dict]:
        """The pull request's changed files (pulls/list-files), at most `limit` of them."""
        files: list[dict] = []
        async for entry in self.api.getiter("/repos/{owner}/{repo}/pulls/{pull_number}/files{?per_page}",
                                            self._vars(pull_number=number, per_page=100)):
            files.append(entry)
            if len(files) >= limit:
                break
        return files

    async def create_review(self, number: int, body: dict) -> dict:
        """A submitted review: COMMENT or REQUEST_CHANGES. Never APPROVE (a bot's approval could count as
        the human one branch protection asks for), nor a pending review (no `event`): refused here, the
        one place every review passes, whatever asked for it."""
        if body.get("event") not in REVIEW_EVENTS:
            raise ValueError(f"AgentVine submits only {' or '.join(REVIEW_EVENTS)} reviews, not {body.get('event')!r}")
        return await self.api.post("/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
                                   self._vars(pull_number=number), data=body)

    async def dismiss_review(self, number: int, review_id: int, message: str) -> dict:
        return await self.api.put("/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/dismissals",
                                  self._vars(pull_number=number, review_id=review_id),
                                  data={"message": message, "event": "DISMISS"})

    async def compare(self, base: str, head: str) -> dict:
        """repos/compare-commits-with-basehead for `base...head` (commit shas): status, commits and the
        files changed since their merge base (at most 300, GitHub's limit)."""
        return await self.api.getitem("/repos/{owner}/{repo}/compare/{basehead}",
                                      self._vars(basehead=f"{base}...{head}"))
