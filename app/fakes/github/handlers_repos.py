"""Apps, installations, rate limit, repositories, collaborators, contents and git refs."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import TYPE_CHECKING, Any

from . import render
from .rest import ApiRequest, ApiResponse, Handler, not_found, paginate, unprocessable

if TYPE_CHECKING:
    from .state import FakeGitHub, Repo


async def list_installations(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    # An App sees its own installations only (one the manifest flow created has none).
    return paginate(req, [copy.deepcopy(i) for i in fake.installations.values() if i["app_id"] == req.app_id])


async def create_installation_token(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    iid = req.int_param("installation_id")
    inst = fake.installations.get(iid)
    if inst is None or inst["app_id"] != req.app_id:
        return not_found("https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app")
    body = req.body or {}
    owned = [r for r in fake.repos.values() if r.installation_id == iid]
    wanted: list[str] | None = None
    if body.get("repositories") or body.get("repository_ids"):
        names = {n.lower() for n in body.get("repositories", [])}
        ids = set(body.get("repository_ids", []))
        chosen = [r for r in owned if r.name.lower() in names or r.id in ids]
        if len(chosen) < len(names) + len(ids):
            return unprocessable(message="There is at least one repository that does not exist or is not accessible to the parent installation.")
        wanted = [r.full_name for r in chosen]
    permissions = body.get("permissions") or dict(inst["permissions"])
    for perm, level in permissions.items():
        granted = inst["permissions"].get(perm)
        if granted is None or (level == "write" and granted == "read"):
            return unprocessable(message="The permissions requested are not granted to this installation.")
    token = fake.tokens.issue(iid, permissions, wanted)
    out = {
        "token": token.token,
        "expires_at": render.now_iso(token.expires_at),
        "permissions": permissions,
        "repository_selection": "selected" if wanted is not None else inst["repository_selection"],
    }
    if wanted is not None:
        out["repositories"] = [fake.render_repository(fake.repo(n)) for n in wanted]
    return ApiResponse(201, out)


async def get_repo_installation(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    assert req.repo is not None
    inst = fake.installations[req.repo.installation_id]
    if inst["app_id"] != req.app_id:
        return not_found()
    return ApiResponse(200, copy.deepcopy(inst))


async def rate_limit(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    bucket = fake.bucket(req.rate_key)
    core = {"limit": bucket.limit, "remaining": bucket.remaining, "reset": bucket.reset, "used": bucket.used}
    search = {"limit": 30, "remaining": 30, "reset": int(time.time()) + 60, "used": 0}
    return ApiResponse(200, {"resources": {"core": core, "search": search}, "rate": core})


async def get_repo(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    assert req.repo is not None
    # An installation token acts with the installation's permissions, not a person's role.
    perms = {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}
    return ApiResponse(200, render.full_repository(fake.render_repository(req.repo), perms))


async def collaborator_permission(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    assert req.repo is not None
    login = req.params["username"]
    role = fake.permission_of(req.repo, login)
    if role is None:
        return not_found("https://docs.github.com/rest/collaborators/collaborators#get-repository-permissions-for-a-user")
    user = fake.user(login)
    base = fake.base_role(role)  # a custom role: its name in role_name, its base's rights everywhere else
    rank = {"admin": 5, "maintain": 4, "write": 3, "triage": 2, "read": 1, "none": 0}[base]
    collaborator = {
        **user,
        "permissions": {"admin": rank >= 5, "maintain": rank >= 4, "push": rank >= 3, "triage": rank >= 2, "pull": rank >= 1},
        "role_name": role,
    }
    from .state import LEGACY_PERMISSION

    return ApiResponse(200, {"permission": LEGACY_PERMISSION[base], "role_name": role, "user": collaborator})


async def get_content(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    repo = req.repo
    assert repo is not None
    doc = "https://docs.github.com/rest/repos/contents#get-repository-content"
    ref = req.query.get("ref") or repo.default_branch
    path = req.params["path"].strip("/")
    # `Accept: application/vnd.github.raw` (or .raw+json, or the older v3.raw) asks for the bytes.
    raw = ".raw" in req.headers.get("Accept", "")

    def look() -> ApiResponse:
        commit = repo.git.resolve(ref)
        if commit is None:
            return ApiResponse(404, render.error(f"No commit found for the ref {ref}", doc, status="404"))
        entry = repo.git.entry(commit, path)
        if entry is None:
            return not_found(doc)
        mode, kind, sha = entry
        if kind == "blob" and raw:
            return ApiResponse(200, raw=repo.git.blob(sha), content_type="application/vnd.github.raw")
        if kind == "blob":
            return ApiResponse(200, render.content_file(fake.urls, repo.full_name, path, ref, sha, repo.git.blob(sha)))
        if kind == "tree":
            items = [
                render.content_entry(fake.urls, repo.full_name, p, ref, s,
                                     "dir" if k == "tree" else "submodule" if k == "commit" else "file", size)
                for _m, k, s, p, size in repo.git.list_tree(commit, path)
            ]
            return ApiResponse(200, items)
        return not_found(doc)

    return await asyncio.to_thread(look)


async def get_ref(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    repo = req.repo
    assert repo is not None
    ref = "refs/" + req.params["ref"].strip("/")
    sha = await asyncio.to_thread(repo.git.ref_sha, ref)
    if sha is None:
        return not_found("https://docs.github.com/rest/git/refs#get-a-reference")
    return ApiResponse(200, render.git_ref(fake.urls, repo.full_name, ref, sha))


async def create_ref(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    repo = req.repo
    assert repo is not None
    ref, sha = req.body["ref"], req.body["sha"]
    if not ref.startswith("refs/") or ref.count("/") < 2:
        return unprocessable(message="Reference name is invalid")

    def create() -> ApiResponse:
        if repo.git.ref_sha(ref):
            return unprocessable(message="Reference already exists")
        if not repo.git.has_commit(sha):
            return unprocessable(message="Object does not exist")
        repo.git.git("update-ref", ref, sha)
        body = render.git_ref(fake.urls, repo.full_name, ref, sha)
        return ApiResponse(201, body, {"Location": body["url"]})

    return await asyncio.to_thread(create)


def _compare_view(repo: "Repo", base: str, head: str) -> dict[str, Any]:
    """What compare answers about two commits of `repo` (run in a worker thread: several git calls)."""
    git = repo.git
    merge_base = git.merge_base(base, head) or base
    ahead, behind = git.commit_count(merge_base, head), git.commit_count(merge_base, base)
    if base == head:
        status = "identical"
    else:
        status = "ahead" if behind == 0 else "behind" if ahead == 0 else "diverged"
    commits = {"base": git.commit_record(base), "merge_base": git.commit_record(merge_base),
               "listed": git.commits(merge_base, head)}
    return {"status": status, "ahead": ahead, "behind": behind, "commits": commits, "changes": git.diff(base, head)}


async def compare(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    """`BASE...HEAD` (branches, tags or shas of this repository; forks are not modelled): the commits on
    HEAD since the merge base and the files changed since it, at most 300 (GitHub's limit)."""
    repo = req.repo
    assert repo is not None
    basehead = req.params["basehead"]
    names = basehead.split("...", 1) if "..." in basehead else None
    base = repo.git.resolve(names[0]) if names else None
    head = repo.git.resolve(names[1]) if names else None
    if base is None or head is None:
        return not_found("https://docs.github.com/rest/commits/commits#compare-two-commits")
    view = await asyncio.to_thread(_compare_view, repo, base, head)
    files = [render.diff_entry(fake.urls, repo.full_name, head, c) for c in view["changes"][:300]]
    return ApiResponse(200, render.comparison(fake.urls, repo.full_name, basehead, status=view["status"],
                                              ahead=view["ahead"], behind=view["behind"], commits=view["commits"],
                                              files=files))


HANDLERS: dict[str, Handler] = {
    "repos/compare-commits-with-basehead": compare,
    "apps/list-installations": list_installations,
    "apps/create-installation-access-token": create_installation_token,
    "apps/get-repo-installation": get_repo_installation,
    "rate-limit/get": rate_limit,
    "repos/get": get_repo,
    "repos/get-collaborator-permission-level": collaborator_permission,
    "repos/get-content": get_content,
    "git/get-ref": get_ref,
    "git/create-ref": create_ref,
}
