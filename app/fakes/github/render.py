"""GitHub-shaped objects: every field the OpenAPI schemas require, spelled the way GitHub does.

Pure functions over plain values; the state module decides what to render and keeps the result.
"""

from __future__ import annotations

import base64
import time
import zlib
from dataclasses import dataclass
from typing import Any

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
DOCS = "https://docs.github.com/rest"


def now_iso(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Urls:
    """Where links in rendered objects point. `api` is the fake's own URL once it listens."""

    api: str = "https://api.github.com"
    html: str = "https://github.com"
    git: str = "https://github.com"


def user(u: Urls, login: str, uid: int, kind: str = "User") -> dict[str, Any]:
    base = f"{u.api}/users/{login}"
    html = f"{u.html}/apps/{login.removesuffix('[bot]')}" if kind == "Bot" else f"{u.html}/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": node_id("U", uid),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": html,
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def repository(u: Urls, rid: int, owner: dict[str, Any], name: str, *, private: bool, default_branch: str,
               created: str, pushed: str, open_issues: int) -> dict[str, Any]:
    """GitHub's `repository` schema (what pull requests embed in head/base)."""
    full = f"{owner['login']}/{name}"
    api = f"{u.api}/repos/{full}"
    return {
        "id": rid,
        "node_id": node_id("R", rid),
        "name": name,
        "full_name": full,
        "private": private,
        "owner": owner,
        "html_url": f"{u.html}/{full}",
        "description": None,
        "fork": False,
        "url": api,
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "assignees_url": f"{api}/assignees{{/user}}",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "comments_url": f"{api}/comments{{/number}}",
        "commits_url": f"{api}/commits{{/sha}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "contributors_url": f"{api}/contributors",
        "deployments_url": f"{api}/deployments",
        "downloads_url": f"{api}/downloads",
        "events_url": f"{api}/events",
        "forks_url": f"{api}/forks",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_url": f"git://github.com/{full}.git",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "issues_url": f"{api}/issues{{/number}}",
        "keys_url": f"{api}/keys{{/key_id}}",
        "labels_url": f"{api}/labels{{/name}}",
        "languages_url": f"{api}/languages",
        "merges_url": f"{api}/merges",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "releases_url": f"{api}/releases{{/id}}",
        "ssh_url": f"git@github.com:{full}.git",
        "stargazers_url": f"{api}/stargazers",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "tags_url": f"{api}/tags",
        "teams_url": f"{api}/teams",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "clone_url": f"{u.git}/{full}.git",
        "mirror_url": None,
        "hooks_url": f"{api}/hooks",
        "svn_url": f"{u.html}/{full}",
        "homepage": None,
        "language": None,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "size": 1,
        "default_branch": default_branch,
        "open_issues_count": open_issues,
        "is_template": False,
        "topics": [],
        "has_issues": True,
        "has_projects": True,
        "has_wiki": True,
        "has_pages": False,
        "has_downloads": True,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "visibility": "private" if private else "public",
        "pushed_at": pushed,
        "created_at": created,
        "updated_at": pushed,
        "allow_forking": True,
        "web_commit_signoff_required": False,
        "license": None,
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
    }


def full_repository(repo: dict[str, Any], permissions: dict[str, bool]) -> dict[str, Any]:
    """GitHub's `full-repository` (GET /repos/{owner}/{repo}) from the embedded `repository` shape."""
    return {
        **repo,
        "permissions": permissions,
        "allow_rebase_merge": True,
        "allow_squash_merge": True,
        "allow_merge_commit": True,
        "allow_auto_merge": False,
        "delete_branch_on_merge": False,
        "allow_update_branch": False,
        "use_squash_pr_title_as_default": False,
        "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
        "squash_merge_commit_message": "COMMIT_MESSAGES",
        "merge_commit_title": "MERGE_MESSAGE",
        "merge_commit_message": "PR_TITLE",
        "temp_clone_token": None,
        "network_count": 0,
        "subscribers_count": 0,
        "security_and_analysis": None,
        "custom_properties": {},
    }


def app_integration(u: Urls, app_id: int, slug: str, owner: dict[str, Any], created: str) -> dict[str, Any]:
    return {
        "id": app_id,
        "slug": slug,
        "client_id": f"Iv1.{app_id:016x}",
        "node_id": node_id("A", app_id),
        "owner": owner,
        "name": slug.replace("-", " ").title(),
        "description": "A GitHub App (fake)",
        "external_url": f"{u.html}/apps/{slug}",
        "html_url": f"{u.html}/apps/{slug}",
        "created_at": created,
        "updated_at": created,
        "permissions": dict(DEFAULT_APP_PERMISSIONS),
        "events": list(APP_EVENTS),
    }


DEFAULT_APP_PERMISSIONS = {
    "checks": "write",
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
}
APP_EVENTS = ("check_run", "check_suite", "issue_comment", "issues", "pull_request", "pull_request_review")


def installation(u: Urls, iid: int, account: dict[str, Any], app_id: int, slug: str, created: str,
                 selection: str) -> dict[str, Any]:
    return {
        "id": iid,
        "account": account,
        "repository_selection": selection,
        "access_tokens_url": f"{u.api}/app/installations/{iid}/access_tokens",
        "repositories_url": f"{u.api}/installation/repositories",
        "html_url": f"{u.html}/settings/installations/{iid}",
        "app_id": app_id,
        "client_id": f"Iv1.{app_id:016x}",
        "target_id": account["id"],
        "target_type": "Organization" if account["type"] == "Organization" else "User",
        "permissions": dict(DEFAULT_APP_PERMISSIONS),
        "events": list(APP_EVENTS),
        "created_at": created,
        "updated_at": created,
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "app_slug": slug,
        "suspended_by": None,
        "suspended_at": None,
        "contact_email": None,
    }


def label(u: Urls, full_name: str, lid: int, name: str, color: str, description: str | None) -> dict[str, Any]:
    return {
        "id": lid,
        "node_id": node_id("LA", lid),
        "url": f"{u.api}/repos/{full_name}/labels/{name}",
        "name": name,
        "description": description,
        "color": color,
        "default": name in ("bug", "documentation", "enhancement", "question"),
    }


def reaction_rollup(url: str, counts: dict[str, int] | None = None) -> dict[str, Any]:
    counts = counts or {}
    return {"url": url, "total_count": sum(counts.values()), **{k: counts.get(k, 0) for k in REACTIONS}}


def issue(u: Urls, full_name: str, iid: int, number: int, *, title: str, body: str | None,
          author: dict[str, Any], labels: list[dict[str, Any]], created: str,
          association: str) -> dict[str, Any]:
    api = f"{u.api}/repos/{full_name}/issues/{number}"
    return {
        "id": iid,
        "node_id": node_id("I", iid),
        "url": api,
        "repository_url": f"{u.api}/repos/{full_name}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{u.html}/{full_name}/issues/{number}",
        "number": number,
        "state": "open",
        "state_reason": None,
        "title": title,
        "body": body,
        "user": author,
        "labels": labels,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "active_lock_reason": None,
        "comments": 0,
        "closed_at": None,
        "created_at": created,
        "updated_at": created,
        "closed_by": None,
        "author_association": association,
        "reactions": reaction_rollup(f"{api}/reactions"),
        "timeline_url": f"{api}/timeline",
        "performed_via_github_app": None,
    }


def issue_comment(u: Urls, full_name: str, cid: int, number: int, *, body: str, author: dict[str, Any],
                  created: str, association: str, via_app: dict[str, Any] | None) -> dict[str, Any]:
    api = f"{u.api}/repos/{full_name}/issues/comments/{cid}"
    return {
        "id": cid,
        "node_id": node_id("IC", cid),
        "url": api,
        "html_url": f"{u.html}/{full_name}/issues/{number}#issuecomment-{cid}",
        "body": body,
        "user": author,
        "created_at": created,
        "updated_at": created,
        "issue_url": f"{u.api}/repos/{full_name}/issues/{number}",
        "author_association": association,
        "performed_via_github_app": via_app,
        "reactions": reaction_rollup(f"{api}/reactions"),
    }


def reaction(rid: int, author: dict[str, Any], content: str, created: str) -> dict[str, Any]:
    return {"id": rid, "node_id": node_id("REA", rid), "user": author, "content": content, "created_at": created}


def check_run(u: Urls, full_name: str, rid: int, *, name: str, head_sha: str, suite_id: int,
              app: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rid,
        "head_sha": head_sha,
        "node_id": node_id("CR", rid),
        "external_id": "",
        "url": f"{u.api}/repos/{full_name}/check-runs/{rid}",
        "html_url": f"{u.html}/{full_name}/runs/{rid}",
        "details_url": app["html_url"],
        "status": "queued",
        "conclusion": None,
        "started_at": None,
        "completed_at": None,
        "output": {
            "title": None,
            "summary": None,
            "text": None,
            "annotations_count": 0,
            "annotations_url": f"{u.api}/repos/{full_name}/check-runs/{rid}/annotations",
        },
        "name": name,
        "check_suite": {"id": suite_id},
        "app": app,
        "pull_requests": [],
    }


def check_annotation(u: Urls, full_name: str, head_sha: str, given: dict[str, Any]) -> dict[str, Any]:
    """An annotation as checks/list-annotations answers it: what its creator sent, every field present."""
    return {
        "path": given["path"],
        "blob_href": f"{u.html}/{full_name}/blob/{head_sha}/{given['path']}",
        "start_line": given["start_line"],
        "end_line": given["end_line"],
        "start_column": given.get("start_column"),
        "end_column": given.get("end_column"),
        "annotation_level": given.get("annotation_level"),
        "title": given.get("title"),
        "message": given.get("message"),
        "raw_details": given.get("raw_details"),
    }


# GitHub's order for a suite's conclusion: the first of these that one of its runs has.
SUITE_CONCLUSIONS = ("action_required", "cancelled", "timed_out", "failure", "neutral", "success", "skipped", "stale")


def check_suite(u: Urls, full_name: str, sid: int, *, head_sha: str, head_branch: str | None, app: dict[str, Any],
                runs: list[dict[str, Any]], pulls: list[dict[str, Any]]) -> dict[str, Any]:
    """A check suite as a `check_suite` webhook carries it: its status and conclusion follow its runs."""
    done = bool(runs) and all(r["status"] == "completed" for r in runs)
    conclusions = {r["conclusion"] for r in runs}
    return {
        "id": sid,
        "node_id": node_id("CS", sid),
        "head_branch": head_branch,
        "head_sha": head_sha,
        "status": "completed" if done else ("in_progress" if runs else "queued"),
        "conclusion": next((c for c in SUITE_CONCLUSIONS if c in conclusions), None) if done else None,
        "url": f"{u.api}/repos/{full_name}/check-suites/{sid}",
        "before": None,
        "after": head_sha,
        "pull_requests": pulls,
        "app": app,
        "latest_check_runs_count": len(runs),
        "check_runs_url": f"{u.api}/repos/{full_name}/check-suites/{sid}/check-runs",
    }


def pull_minimal(pull: dict[str, Any]) -> dict[str, Any]:
    def side(s: dict[str, Any]) -> dict[str, Any]:
        return {"ref": s["ref"], "sha": s["sha"], "repo": {"id": s["repo"]["id"], "url": s["repo"]["url"], "name": s["repo"]["name"]}}

    return {"id": pull["id"], "number": pull["number"], "url": pull["url"], "head": side(pull["head"]), "base": side(pull["base"])}


def pull_request(u: Urls, full_name: str, pid: int, number: int, *, title: str, body: str | None,
                 author: dict[str, Any], head: dict[str, Any], base: dict[str, Any], draft: bool,
                 maintainer_can_modify: bool, created: str, association: str) -> dict[str, Any]:
    api = f"{u.api}/repos/{full_name}/pulls/{number}"
    issue_api = f"{u.api}/repos/{full_name}/issues/{number}"
    html = f"{u.html}/{full_name}/pull/{number}"
    statuses = f"{u.api}/repos/{full_name}/statuses/{head['sha']}"
    return {
        "url": api,
        "id": pid,
        "node_id": node_id("PR", pid),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue_api,
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{u.api}/repos/{full_name}/pulls/comments{{/number}}",
        "comments_url": f"{issue_api}/comments",
        "statuses_url": statuses,
        "number": number,
        "state": "open",
        "locked": False,
        "title": title,
        "user": author,
        "body": body,
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": created,
        "updated_at": created,
        "closed_at": None,
        "merged_at": None,
        "merge_commit_sha": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": head,
        "base": base,
        "_links": {
            "self": {"href": api},
            "html": {"href": html},
            "issue": {"href": issue_api},
            "comments": {"href": f"{issue_api}/comments"},
            "review_comments": {"href": f"{api}/comments"},
            "review_comment": {"href": f"{u.api}/repos/{full_name}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/commits"},
            "statuses": {"href": statuses},
        },
        "author_association": association,
        "auto_merge": None,
        "draft": draft,
        "merged": False,
        "mergeable": True,
        "rebaseable": True,
        "mergeable_state": "clean",
        "merged_by": None,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": maintainer_can_modify,
        "commits": 0,
        "additions": 0,
        "deletions": 0,
        "changed_files": 0,
    }


# Fields of `pull-request` that the list endpoint (`pull-request-simple`) does not return.
PULL_DETAIL_ONLY = (
    "merged", "mergeable", "rebaseable", "mergeable_state", "merged_by", "comments", "review_comments",
    "maintainer_can_modify", "commits", "additions", "deletions", "changed_files",
)


def pull_simple(pull: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pull.items() if k not in PULL_DETAIL_ONLY}


def review(u: Urls, full_name: str, rid: int, number: int, *, author: dict[str, Any], body: str, state: str,
           commit_id: str, submitted: str | None, association: str) -> dict[str, Any]:
    html = f"{u.html}/{full_name}/pull/{number}#pullrequestreview-{rid}"
    pull_api = f"{u.api}/repos/{full_name}/pulls/{number}"
    out = {
        "id": rid,
        "node_id": node_id("PRR", rid),
        "user": author,
        "body": body,
        "state": state,
        "html_url": html,
        "pull_request_url": pull_api,
        "_links": {"html": {"href": html}, "pull_request": {"href": pull_api}},
        "commit_id": commit_id,
        "author_association": association,
    }
    if submitted:
        out["submitted_at"] = submitted
    return out


def review_comment(u: Urls, full_name: str, cid: int, number: int, review_id: int, *, author: dict[str, Any],
                   comment: dict[str, Any], commit_id: str, diff_hunk: str, created: str,
                   association: str) -> dict[str, Any]:
    """A pull request review comment (`pull-request-review-comment`; not served by any operation here)."""
    api = f"{u.api}/repos/{full_name}/pulls/comments/{cid}"
    return {
        "url": api,
        "pull_request_review_id": review_id,
        "id": cid,
        "node_id": node_id("PRRC", cid),
        "diff_hunk": diff_hunk,
        "path": comment["path"],
        "position": comment.get("position"),
        "original_position": comment.get("position"),
        "commit_id": commit_id,
        "original_commit_id": commit_id,
        "user": author,
        "body": comment["body"],
        "created_at": created,
        "updated_at": created,
        "html_url": f"{u.html}/{full_name}/pull/{number}#discussion_r{cid}",
        "reactions": reaction_rollup(f"{api}/reactions"),
        "pull_request_url": f"{u.api}/repos/{full_name}/pulls/{number}",
        "author_association": association,
        "_links": {
            "self": {"href": api},
            "html": {"href": f"{u.html}/{full_name}/pull/{number}#discussion_r{cid}"},
            "pull_request": {"href": f"{u.api}/repos/{full_name}/pulls/{number}"},
        },
        "start_line": comment.get("start_line"),
        "original_start_line": comment.get("start_line"),
        "start_side": comment.get("start_side"),
        "line": comment.get("line"),
        "original_line": comment.get("line"),
        "side": comment.get("side", "RIGHT"),
        "subject_type": "line",
    }


def commit(u: Urls, full_name: str, info: dict[str, Any]) -> dict[str, Any]:
    """A `commit` (as compare lists them) from BareRepo.commits' record. Author and committer are
    null: the fake's commits carry e-mail addresses of no GitHub account, for which GitHub says null."""
    sha = info["sha"]
    api = f"{u.api}/repos/{full_name}/commits/{sha}"
    return {
        "url": api,
        "sha": sha,
        "node_id": base64.b64encode(f"04:Commit{sha}".encode()).decode().rstrip("="),
        "html_url": f"{u.html}/{full_name}/commit/{sha}",
        "comments_url": f"{api}/comments",
        "commit": {
            "url": f"{u.api}/repos/{full_name}/git/commits/{sha}",
            "author": info["author"],
            "committer": info["committer"],
            "message": info["message"],
            "comment_count": 0,
            "tree": {"sha": info["tree"], "url": f"{u.api}/repos/{full_name}/git/trees/{info['tree']}"},
            "verification": {"verified": False, "reason": "unsigned", "payload": None, "signature": None,
                             "verified_at": None},
        },
        "author": None,
        "committer": None,
        "parents": [{"sha": p, "url": f"{u.api}/repos/{full_name}/commits/{p}", "html_url": f"{u.html}/{full_name}/commit/{p}"}
                    for p in info["parents"]],
    }


def comparison(u: Urls, full_name: str, basehead: str, *, status: str, ahead: int, behind: int,
               commits: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    """`commit-comparison`: `commits` holds the base, the merge base and the listed commits' records."""
    base, merge_base, listed = commits["base"], commits["merge_base"], commits["listed"]
    return {
        "url": f"{u.api}/repos/{full_name}/compare/{basehead}",
        "html_url": f"{u.html}/{full_name}/compare/{basehead}",
        "permalink_url": f"{u.html}/{full_name}/compare/{base['sha']}...{listed[-1]['sha'] if listed else base['sha']}",
        "diff_url": f"{u.html}/{full_name}/compare/{basehead}.diff",
        "patch_url": f"{u.html}/{full_name}/compare/{basehead}.patch",
        "base_commit": commit(u, full_name, base),
        "merge_base_commit": commit(u, full_name, merge_base),
        "status": status,
        "ahead_by": ahead,
        "behind_by": behind,
        "total_commits": ahead,
        "commits": [commit(u, full_name, c) for c in listed],
        "files": files,
    }


def diff_entry(u: Urls, full_name: str, head_sha: str, change: Any) -> dict[str, Any]:
    out = {
        "sha": change.blob_sha,
        "filename": change.filename,
        "status": change.status,
        "additions": change.additions,
        "deletions": change.deletions,
        "changes": change.additions + change.deletions,
        "blob_url": f"{u.html}/{full_name}/blob/{head_sha}/{change.filename}",
        "raw_url": f"{u.html}/{full_name}/raw/{head_sha}/{change.filename}",
        "contents_url": f"{u.api}/repos/{full_name}/contents/{change.filename}?ref={head_sha}",
    }
    if change.patch:
        out["patch"] = change.patch
    if change.previous_filename:
        out["previous_filename"] = change.previous_filename
    return out


def _content_links(u: Urls, full_name: str, path: str, ref: str, sha: str, kind: str) -> dict[str, Any]:
    api = f"{u.api}/repos/{full_name}/contents/{path}?ref={ref}"
    git = f"{u.api}/repos/{full_name}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
    html = f"{u.html}/{full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}"
    return {"url": api, "git_url": git, "html_url": html, "_links": {"self": api, "git": git, "html": html}}


def content_file(u: Urls, full_name: str, path: str, ref: str, sha: str, data: bytes) -> dict[str, Any]:
    encoded = base64.b64encode(data).decode()
    # GitHub wraps the base64 text at 60 columns.
    wrapped = "\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)) + ("\n" if encoded else "")
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": wrapped,
        "sha": sha,
        **_content_links(u, full_name, path, ref, sha, "file"),
        "download_url": f"https://raw.githubusercontent.com/{full_name}/{ref}/{path}",
    }


def content_entry(u: Urls, full_name: str, path: str, ref: str, sha: str, kind: str, size: int) -> dict[str, Any]:
    return {
        "type": kind,
        "size": size,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        **_content_links(u, full_name, path, ref, sha, kind),
        "download_url": f"https://raw.githubusercontent.com/{full_name}/{ref}/{path}" if kind == "file" else None,
    }


def git_ref(u: Urls, full_name: str, ref: str, sha: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "node_id": node_id("REF", zlib.crc32(f"{full_name}:{ref}".encode())),
        "url": f"{u.api}/repos/{full_name}/git/{ref}",
        "object": {"type": "commit", "sha": sha, "url": f"{u.api}/repos/{full_name}/git/commits/{sha}"},
    }


def error(message: str, doc: str = DOCS, **extra: Any) -> dict[str, Any]:
    return {"message": message, "documentation_url": doc, **extra}


def validation_failed(errors: list[dict[str, Any]] | None = None, message: str = "Validation Failed",
                      doc: str = DOCS) -> dict[str, Any]:
    out: dict[str, Any] = {"message": message, "documentation_url": doc, "status": "422"}
    if errors is not None:
        out["errors"] = errors
    return out
