"""FakeGitHub: the state of a small GitHub (users, installations, repositories backed by real
bare git repos, issues, comments, labels, reactions, check runs, pull requests, reviews) and the
public API that tests and the demo use to arrange it and to assert on it.

Stored objects are GitHub-shaped dicts; the REST handlers mutate them as GitHub would and hand
out copies, so what a test reads from `fake.comments` is what the bot was sent.
"""

from __future__ import annotations

import copy
import itertools
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from . import render, suggestions
from .auth import TokenStore, generate_private_key_pem, public_key_pem
from .gitrepo import BareRepo
from .manifests import ManifestFlow
from .openapi import OpenAPIValidator, get_validator

PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")
# GitHub's legacy `permission` field folds the finer roles into admin/write/read/none.
LEGACY_PERMISSION = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read", "none": "none"}
_RANK = {p: i for i, p in enumerate(reversed(PERMISSIONS))}  # none=0 ... admin=5


@dataclass
class RecordedCall:
    method: str
    path: str
    query: dict[str, str]
    status: int
    request_json: Any
    response_json: Any
    operation_id: str | None
    duration: float
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    injected: bool = False  # answered by inject_fault, not by the fake's logic


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    remaining: int
    headers: dict[str, str]
    delay: float
    body: dict[str, Any] | None


@dataclass
class Repo:
    full_name: str
    owner: str
    name: str
    id: int
    installation_id: int
    private: bool
    default_branch: str
    git: BareRepo
    created: str
    permissions: dict[str, str] = field(default_factory=dict)  # login -> role
    # GitHub Free/Pro private repositories have no draft pull requests: creating one is a 422.
    draft_pulls: bool = True
    next_number: int = 1  # issues and pull requests share one sequence


@dataclass
class RateBucket:
    limit: int
    used: int = 0
    reset: int = 0

    def roll(self, now: float) -> None:
        if now >= self.reset:
            self.used, self.reset = 0, int(now) + 3600

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


_PROCESS_KEY: list[str] = []


def _process_key() -> str:
    if not _PROCESS_KEY:
        _PROCESS_KEY.append(generate_private_key_pem())
    return _PROCESS_KEY[0]


class FakeGitHub:
    """A GitHub you can hold in your hand. See docs/github-fake.md."""

    def __init__(
        self,
        app_id: int = 4242,
        app_slug: str = "agentvine",
        data_dir: Path | None = None,
        *,
        spec_path: Path | None = None,
        rate_limit: int = 5000,
        private_key_pem: str | None = None,
        api_prefix: str = "",
    ) -> None:
        """`api_prefix="/api/v3"` makes it a GitHub Enterprise Server: the REST API under that path, git
        and the web pages (`html_url`) at the host's root."""
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="fake-github-"))
        self.app_id = app_id
        self.app_slug = app_slug
        self.data_dir = Path(data_dir)
        self.git_root = self.data_dir / "git"
        self.git_root.mkdir(parents=True, exist_ok=True)
        # One generated key per process unless told otherwise: RSA generation costs ~50-200 ms,
        # and a test suite builds many fakes.
        self.private_key_pem: str = private_key_pem or _process_key()
        self.public_key_pem: bytes = public_key_pem(self.private_key_pem)
        self.validator: OpenAPIValidator = get_validator(spec_path)
        self.rate_limit = rate_limit
        self.api_prefix = api_prefix.rstrip("/")
        self._url: str | None = None
        self.urls = render.Urls()

        self._ids = {k: itertools.count(start) for k, start in {
            "user": 1000, "repo": 500000, "issue": 2000000, "comment": 3000000, "reaction": 4000000,
            "check": 5000000, "suite": 6000000, "pull": 7000000, "review": 8000000, "review_comment": 9000000,
            "label": 100,
        }.items()}
        self.users: dict[str, dict[str, Any]] = {}
        self.installations: dict[int, dict[str, Any]] = {}
        self.repos: dict[str, Repo] = {}
        # Custom repository roles (an organization's, on GitHub): name -> the built-in role it is based on.
        self.custom_roles: dict[str, str] = {}
        self.issues: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.reactions: list[dict[str, Any]] = []
        self.check_runs: list[dict[str, Any]] = []
        self._pulls: list[dict[str, Any]] = []
        self.reviews: list[dict[str, Any]] = []
        self.review_comments: list[dict[str, Any]] = []
        self.review_dismissals: dict[int, str] = {}  # review id -> the dismissal's message
        self.labels: dict[str, dict[str, dict[str, Any]]] = {}  # repo full name -> name -> label
        self.calls: list[RecordedCall] = []
        self.git_calls: list[RecordedCall] = []
        self.violations: list[str] = []
        # Every request that is not a read (REST and git pushes): (time, method, path, Host header).
        self.writes: list[tuple[float, str, str, str]] = []
        self.git_errors: list[str] = []  # stderr of failed `git http-backend` runs
        self.tokens = TokenStore()
        self.faults: list[Fault] = []
        self.rate_buckets: dict[str, RateBucket] = {}

        # Indexes: what GitHub objects belong to, which the objects themselves only say in URLs.
        self._issue_index: dict[tuple[str, int], dict[str, Any]] = {}
        self._pull_index: dict[tuple[str, int], dict[str, Any]] = {}
        self._comment_index: dict[int, tuple[str, int, dict[str, Any]]] = {}
        self._check_index: dict[int, tuple[str, dict[str, Any]]] = {}
        self._suites: dict[tuple[str, int, str], int] = {}
        self._suite_branches: dict[int, str | None] = {}
        self.other_apps: dict[str, dict[str, Any]] = {}  # slug -> integration: the Apps a repository's CI runs as
        self._reactions_on: dict[tuple[str, Any], list[dict[str, Any]]] = {}
        self._check_annotations: dict[int, list[dict[str, Any]]] = {}
        self._check_actions: dict[int, list[dict[str, Any]]] = {}

        self.bot = self.add_user(f"{app_slug}[bot]", type="Bot")
        self.app_owner = self.add_user(f"{app_slug}-owner")
        self.app = render.app_integration(self.urls, app_id, app_slug, self.app_owner, render.now_iso())
        # The person signed in to the web pages (who registers an App from a manifest).
        self.web_user = "octocat"
        self.manifests = ManifestFlow(self)

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str | None:
        return self._url

    @url.setter
    def url(self, value: str | None) -> None:
        """Set once the server listens; objects created afterwards link to the fake itself."""
        self._url = value.rstrip("/") if value else None
        if self._url:
            html = self._url if self.api_prefix else "https://github.com"
            self.urls = render.Urls(api=self.api_url, html=html, git=self._url)
            # Accounts and the App exist from construction on; give them the new addresses.
            for key, u in self.users.items():
                self.users[key] = render.user(self.urls, u["login"], u["id"], u["type"])
            self.bot = self.user(self.bot["login"])
            self.app = render.app_integration(self.urls, self.app_id, self.app_slug, self.user(self.app_owner["login"]),
                                              self.app["created_at"])
            for iid, inst in self.installations.items():
                self.installations[iid] = render.installation(
                    self.urls, iid, self.user(inst["account"]["login"]), self.app_id, self.app_slug,
                    inst["created_at"], inst["repository_selection"])

    @property
    def api_url(self) -> str:
        """The REST API's root (what AGENTVINE_GITHUB_API_URL names); `url` is git's and the web's."""
        assert self._url is not None, "the fake is not listening yet"
        return self._url + self.api_prefix

    def signing_key(self, issuer: str | None) -> tuple[int, bytes]:
        """The App a JWT's `iss` names and its public key: one the manifest flow created, else the fake's own."""
        created = self.manifests.apps.get(int(issuer)) if issuer and issuer.isdigit() else None
        if created is not None:
            return created.integration["id"], created.public_key_pem
        return self.app_id, self.public_key_pem

    def make_app(self) -> web.Application:
        from .server import make_app

        return make_app(self)

    def next_id(self, kind: str) -> int:
        return next(self._ids[kind])

    # ------------------------------------------------------------------ arranging

    def add_user(self, login: str, type: str = "User") -> dict[str, Any]:
        """A GitHub account (`type` "User", "Bot" or "Organization"). Returns its simple-user shape."""
        if login.lower() in self.users:
            return copy.deepcopy(self.users[login.lower()])
        self.users[login.lower()] = render.user(self.urls, login, self.next_id("user"), type)
        return copy.deepcopy(self.users[login.lower()])

    def user(self, login: str) -> dict[str, Any]:
        if login.lower() not in self.users:
            self.add_user(login)
        return copy.deepcopy(self.users[login.lower()])

    def add_installation(self, installation_id: int, account: str, *, account_type: str = "User",
                         repository_selection: str = "all") -> dict[str, Any]:
        owner = self.users.get(account.lower()) or self.users[self.add_user(account, account_type)["login"].lower()]
        inst = render.installation(self.urls, installation_id, copy.deepcopy(owner), self.app_id, self.app_slug,
                                   render.now_iso(), repository_selection)
        self.installations[installation_id] = inst
        return copy.deepcopy(inst)

    def add_repo(self, full_name: str, *, installation_id: int, default_branch: str = "main",
                 files: dict[str, str] | None = None, private: bool = False, draft_pulls: bool = True) -> dict[str, Any]:
        """A repository with a real bare git repo and an initial commit of `files` on `default_branch`."""
        if installation_id not in self.installations:
            raise KeyError(f"no installation {installation_id}; call add_installation first")
        owner, name = full_name.split("/", 1)
        self.add_user(owner)
        git = BareRepo.create(self.git_root / owner / f"{name}.git", default_branch,
                              files if files is not None else {"README.md": f"# {name}\n"})
        repo = Repo(full_name=full_name, owner=owner, name=name, id=self.next_id("repo"),
                    installation_id=installation_id, private=private, default_branch=default_branch,
                    git=git, created=render.now_iso(), draft_pulls=draft_pulls)
        repo.permissions[owner.lower()] = "admin"
        self.repos[full_name.lower()] = repo
        self.labels[full_name] = {}
        return self.render_repository(repo)

    def set_permission(self, full_name: str, login: str, permission: str, *, base: str | None = None) -> None:
        """Make `login` a collaborator with a role ("none" removes them). Unknown logins become users.
        A role that is not one of GitHub's is a custom repository role, based on the built-in `base`."""
        if permission not in PERMISSIONS:
            if base not in ("read", "triage", "write", "maintain"):
                raise ValueError(f"permission must be one of {PERMISSIONS}, or a custom role with a base")
            self.custom_roles[permission] = base
        self.add_user(login)
        self.repo(full_name).permissions[login.lower()] = permission

    def add_issue(self, full_name: str, *, title: str, body: str = "", user: str = "octocat",
                  labels: tuple[str, ...] | list[str] = (), number: int | None = None) -> dict[str, Any]:
        """An issue with the repository's next number, or with `number` (a recorded payload's; the
        numbers given out afterwards follow it)."""
        repo = self.repo(full_name)
        return copy.deepcopy(self.create_issue(repo, title=title, body=body, author=self.user(user), labels=list(labels),
                                               number=number))

    def add_pull(self, full_name: str, *, head: str, base: str, title: str, body: str = "",
                 user: str = "octocat", draft: bool = False, number: int | None = None) -> dict[str, Any]:
        repo = self.repo(full_name)
        if repo.git.resolve(head) is None or repo.git.resolve(base) is None:
            raise ValueError(f"branches {head!r} and {base!r} must exist in {full_name}")
        return copy.deepcopy(self.refresh_pull(repo, self.create_pull(
            repo, title=title, body=body, author=self.user(user), head=head, base=base, draft=draft, number=number)))

    def add_comment(self, full_name: str, issue_number: int, *, body: str, user: str,
                    comment_id: int | None = None) -> dict[str, Any]:
        """A comment with the next id, or with `comment_id` (a recorded payload's, which the bot reacts to)."""
        repo = self.repo(full_name)
        return copy.deepcopy(self.create_comment(repo, issue_number, body=body, author=self.user(user),
                                                 comment_id=comment_id))

    def delete_comment(self, full_name: str, comment_id: int) -> None:
        """A comment deleted as a person deletes it on GitHub: later reads and edits of it are 404."""
        repo, _, comment = self._comment_index.pop(comment_id)
        assert repo == full_name.lower(), f"comment {comment_id} is not on {full_name}"
        self.comments.remove(comment)

    def add_label(self, full_name: str, name: str, color: str = "ededed", description: str = "") -> dict[str, Any]:
        return copy.deepcopy(self.ensure_label(self.repo(full_name), name, color, description))

    def push_files(self, full_name: str, branch: str, files: dict[str, str], message: str = "Update files",
                   *, base: str | None = None) -> str:
        """Commit `files` on `branch` (created from `base` or the default branch) in the bare repo."""
        repo = self.repo(full_name)
        parent = repo.git.resolve(branch) or repo.git.resolve(base or repo.default_branch)
        return repo.git.commit_files(branch, files, message, parent)

    # ------------------------------------------------------------------ reading

    def repo(self, full_name: str) -> Repo:
        try:
            return self.repos[full_name.lower()]
        except KeyError:
            raise KeyError(f"no repository {full_name}") from None

    def find_repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def head_sha(self, full_name: str, branch: str) -> str:
        sha = self.repo(full_name).git.resolve(branch)
        if sha is None:
            raise KeyError(f"{full_name} has no branch {branch}")
        return sha

    def read_file(self, full_name: str, ref: str, path: str) -> str | None:
        data = self.repo(full_name).git.read_file(ref, path)
        return None if data is None else data.decode()

    def branches(self, full_name: str) -> dict[str, str]:
        return self.repo(full_name).git.branches()

    @property
    def pulls(self) -> list[dict[str, Any]]:
        """Pull requests, with head/base shas and diff figures refreshed from git."""
        for pull in self._pulls:
            self.refresh_pull(self.repo(pull["base"]["repo"]["full_name"]), pull)
        return self._pulls

    def issue(self, full_name: str, number: int) -> dict[str, Any] | None:
        return self._issue_index.get((full_name.lower(), number))

    def pull(self, full_name: str, number: int) -> dict[str, Any] | None:
        pull = self._pull_index.get((full_name.lower(), number))
        return self.refresh_pull(self.repo(full_name), pull) if pull else None

    def comments_on(self, full_name: str, issue_number: int) -> list[dict[str, Any]]:
        return [c for cid, (repo, num, c) in self._comment_index.items() if repo == full_name.lower() and num == issue_number]

    def reactions_on_issue(self, full_name: str, issue_number: int) -> list[dict[str, Any]]:
        return list(self._reactions_on.get(("issue", (full_name.lower(), issue_number)), []))

    def reactions_on_comment(self, comment_id: int) -> list[dict[str, Any]]:
        return list(self._reactions_on.get(("comment", comment_id), []))

    def reactions_on_review_comment(self, comment_id: int) -> list[dict[str, Any]]:
        return list(self._reactions_on.get(("review_comment", comment_id), []))

    def find_review_comment(self, repo: Repo, comment_id: Any) -> dict[str, Any] | None:
        where = f"/repos/{repo.full_name}/pulls/".lower()
        return next((c for c in self.review_comments
                     if str(c["id"]) == str(comment_id) and where in c["pull_request_url"].lower()), None)

    def add_review_comment(self, full_name: str, number: int, *, body: str, user: str, path: str,
                           line: int) -> dict[str, Any]:
        """A review comment on a line of pull request `number`, as a person leaves it in the Files tab."""
        repo = self.repo(full_name)
        pull = self.pull(full_name, number)
        if pull is None:
            raise KeyError(f"no pull request {full_name}#{number}")
        comment = render.review_comment(
            self.urls, repo.full_name, self.next_id("review_comment"), number, self.next_id("review"),
            author=self.user(user), comment={"path": path, "line": line, "body": body}, commit_id=pull["head"]["sha"],
            diff_hunk=f"@@ -{line} +{line} @@", created=render.now_iso(), association=self.association(repo, user))
        self.review_comments.append(comment)
        return copy.deepcopy(comment)

    def apply_suggestion(self, full_name: str, comment_id: int, *, user: str = "octocat") -> str:
        """"Commit suggestion" on a review comment: its block replaces lines start_line..line on the
        pull request's branch (app/fakes/github/suggestions.py); the new head."""
        return suggestions.apply_suggestion(self, full_name, comment_id, user=user)

    def check_runs_for(self, full_name: str, head_sha: str | None = None) -> list[dict[str, Any]]:
        return [run for _, (repo, run) in self._check_index.items()
                if repo == full_name.lower() and (head_sha is None or run["head_sha"] == head_sha)]

    def other_app(self, slug: str) -> dict[str, Any]:
        """Another GitHub App (`github-actions` has GitHub Actions' own id, 15368), made on first use."""
        if slug not in self.other_apps:
            app_id = 15368 if slug == "github-actions" else 900000 + len(self.other_apps)
            owner = self.user("github") if slug == "github-actions" else self.add_user(f"{slug}-owner")
            self.other_apps[slug] = render.app_integration(self.urls, app_id, slug, owner, render.now_iso())
        return copy.deepcopy(self.other_apps[slug])

    def add_ci_check_run(self, full_name: str, head_sha: str, name: str, *, conclusion: str | None = None,
                         status: str = "in_progress", output: dict[str, Any] | None = None,
                         app: str = "github-actions") -> dict[str, Any]:
        """A check run of the repository's CI (another App, `app`), as its creator posts it: completed with
        `conclusion` if given, else in `status`; `output` may carry title, summary, text and annotations."""
        from .handlers_checks import add_run  # the handlers import this module

        body: dict[str, Any] = {"name": name, "head_sha": head_sha, **({"output": output} if output else {})}
        body.update({"conclusion": conclusion} if conclusion else {"status": status})
        repo = self.repo(full_name)
        if not repo.git.has_commit(head_sha):
            raise ValueError(f"No commit found for SHA: {head_sha}")
        made = add_run(self, repo, self.other_app(app), body)
        if not isinstance(made, dict):
            raise ValueError(f"GitHub would refuse this check run: {made.body}")
        return copy.deepcopy(made)

    def finish_ci_check_run(self, check_run_id: int, conclusion: str, output: dict[str, Any] | None = None) -> dict[str, Any]:
        """A CI check run (add_ci_check_run) concluding, as its App's update would make it."""
        from .handlers_checks import _apply  # the handlers import this module

        _, run = self._check_index[check_run_id]
        refused = _apply(self, run, {"conclusion": conclusion, **({"output": output} if output else {})})
        if refused is not None:
            raise ValueError(f"GitHub would refuse this update: {refused.body}")
        return copy.deepcopy(run)

    def check_suite(self, full_name: str, head_sha: str, app: str = "github-actions") -> dict[str, Any]:
        """The check suite of App `app` (a slug; the fake's own App by its slug) on `head_sha`, as a
        `check_suite` webhook carries it: status and conclusion from its runs, the open pull requests
        whose head is the sha."""
        from .handlers_checks import latest  # the handlers import this module

        repo = self.repo(full_name)
        integration = copy.deepcopy(self.app) if app == self.app_slug else self.other_app(app)
        runs = [r for r in self.check_runs_for(full_name, head_sha) if r["app"]["id"] == integration["id"]]
        suite_id = self.check_suite_id(repo, head_sha, integration["id"])
        branch = self._suite_branches.get(suite_id)
        # "A pull request matches a check suite if they have the same head_sha and head_branch."
        pulls = [render.pull_minimal(self.refresh_pull(repo, p)) for (r, _), p in list(self._pull_index.items())
                 if r == repo.full_name.lower() and p["state"] == "open" and p["head"]["ref"] == branch
                 and repo.git.resolve(p["head"]["ref"]) == head_sha]
        return render.check_suite(self.urls, repo.full_name, suite_id, head_sha=head_sha, head_branch=branch,
                                  app=integration, runs=latest(runs), pulls=pulls)

    def check_run_actions(self, check_run_id: int) -> list[dict[str, Any]]:
        """The buttons (requested actions) a check run shows now; GitHub's responses do not carry them."""
        return list(self._check_actions.get(check_run_id, []))

    def check_run_annotations(self, check_run_id: int) -> list[dict[str, Any]]:
        return list(self._check_annotations.get(check_run_id, []))

    def base_role(self, role: str) -> str:
        """The built-in role a role stands for: itself, or a custom role's base."""
        return self.custom_roles.get(role, role)

    def permission_of(self, repo: Repo, login: str) -> str | None:
        """GitHub's answer for collaborator permission: a role, or None when the user does not exist.

        A user who is not a collaborator gets "read" on a public repository (anyone may read it)
        and "none" on a private one.
        """
        if login.lower() not in self.users:
            return None
        if login.lower() in repo.permissions:
            return repo.permissions[login.lower()]
        return "none" if repo.private else "read"

    def association(self, repo: Repo, login: str) -> str:
        if login.lower() == repo.owner.lower():
            return "OWNER"
        role = repo.permissions.get(login.lower())
        if role and _RANK[self.base_role(role)] >= _RANK["triage"]:
            owner_type = self.users.get(repo.owner.lower(), {}).get("type")
            return "MEMBER" if owner_type == "Organization" else "COLLABORATOR"
        return "NONE"

    # ------------------------------------------------------------------ faults and tokens

    def inject_fault(self, method: str, path_pattern: str, *, status: int | None = 502, times: int = 1,
                     headers: dict[str, str] | None = None, delay: float = 0.0,
                     body: dict[str, Any] | None = None) -> Fault:
        """Answer the next `times` matching requests with `status` (after `delay` seconds).

        `path_pattern` is a regex searched in the request path; `method` "*" matches any method.
        `status=None` only delays, then serves the request normally (a slow GitHub).
        """
        fault = Fault(method.upper(), re.compile(path_pattern), status, times, dict(headers or {}), delay, body)
        self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.method in ("*", method.upper()) and fault.pattern.search(path):
                fault.remaining -= 1
                return fault
        return None

    def bucket(self, key: str) -> RateBucket:
        """The primary rate limit of one installation (or of the App itself, for JWT calls)."""
        bucket = self.rate_buckets.setdefault(key, RateBucket(self.rate_limit))
        bucket.roll(time.time())
        return bucket

    def expire_tokens(self) -> None:
        """Invalidate every installation token issued so far: the bot's next call gets 401."""
        self.tokens.expire_all()

    def webhook(self, event: str, action: str | None, *, repo: str | None = None, sender: str | None = None,
                **objects: Any) -> dict[str, Any]:
        """A webhook payload around the fake's objects, e.g. webhook("issue_comment", "created",
        issue=..., comment=..., sender="alice"). See webhooks.build."""
        from .webhooks import build

        return build(self, event, action, repo=repo, sender=sender, **objects)

    def assert_no_violations(self) -> None:
        if self.violations:
            raise AssertionError("GitHub OpenAPI violations:\n" + "\n".join(self.violations))

    # ------------------------------------------------------------------ state transitions
    # (used by the REST handlers and by the arranging methods above)

    def render_repository(self, repo: Repo) -> dict[str, Any]:
        open_issues = sum(1 for (r, _), i in self._issue_index.items() if r == repo.full_name.lower() and i["state"] == "open")
        return render.repository(self.urls, repo.id, self.user(repo.owner), repo.name, private=repo.private,
                                 default_branch=repo.default_branch, created=repo.created,
                                 pushed=render.now_iso(), open_issues=open_issues)

    def ensure_label(self, repo: Repo, name: str, color: str = "ededed", description: str = "") -> dict[str, Any]:
        # description "" rather than GitHub's usual null: `pull-request-simple` types it as a
        # non-nullable string, and the fake must answer what the description allows.
        labels = self.labels.setdefault(repo.full_name, {})
        for existing in labels.values():
            if existing["name"].lower() == name.lower():
                return existing
        labels[name] = render.label(self.urls, repo.full_name, self.next_id("label"), name, color, description)
        return labels[name]

    def _take_number(self, repo: Repo, number: int | None) -> int:
        if number is None:
            number = repo.next_number
        elif number < 1 or (repo.full_name.lower(), number) in self._issue_index:
            raise ValueError(f"{repo.full_name} cannot have another #{number}")
        repo.next_number = max(repo.next_number, number + 1)
        return number

    def create_issue(self, repo: Repo, *, title: str, body: str | None, author: dict[str, Any],
                     labels: list[str], number: int | None = None) -> dict[str, Any]:
        number = self._take_number(repo, number)
        issue = render.issue(self.urls, repo.full_name, self.next_id("issue"), number, title=title, body=body,
                             author=author, labels=[copy.deepcopy(self.ensure_label(repo, n)) for n in labels],
                             created=render.now_iso(), association=self.association(repo, author["login"]))
        self.issues.append(issue)
        self._issue_index[(repo.full_name.lower(), number)] = issue
        return issue

    def touch(self, obj: dict[str, Any]) -> None:
        obj["updated_at"] = render.now_iso()

    def create_comment(self, repo: Repo, number: int, *, body: str, author: dict[str, Any],
                       comment_id: int | None = None) -> dict[str, Any]:
        issue = self._issue_index.get((repo.full_name.lower(), number))
        if issue is None:
            raise KeyError(f"{repo.full_name} has no issue #{number}")
        if comment_id is not None and comment_id in self._comment_index:
            raise ValueError(f"a comment {comment_id} exists already")
        via_app = copy.deepcopy(self.app) if author["type"] == "Bot" and author["login"] == self.bot["login"] else None
        while comment_id is None or comment_id in self._comment_index:  # given ids may lie ahead of the count
            comment_id = self.next_id("comment")
        comment = render.issue_comment(self.urls, repo.full_name, comment_id, number, body=body,
                                       author=author, created=render.now_iso(),
                                       association=self.association(repo, author["login"]), via_app=via_app)
        self.comments.append(comment)
        self._comment_index[comment["id"]] = (repo.full_name.lower(), number, comment)
        issue["comments"] += 1
        self.touch(issue)
        pull = self._pull_index.get((repo.full_name.lower(), number))
        if pull:
            pull["comments"] += 1
        return comment

    def add_reaction(self, subject: tuple[str, Any], target: dict[str, Any], author: dict[str, Any],
                     content: str) -> tuple[dict[str, Any], bool]:
        """(reaction, created). GitHub answers an existing identical reaction with 200, not a duplicate."""
        existing = self._reactions_on.setdefault(subject, [])
        for r in existing:
            if r["user"]["id"] == author["id"] and r["content"] == content:
                return r, False
        reaction = render.reaction(self.next_id("reaction"), author, content, render.now_iso())
        existing.append(reaction)
        self.reactions.append(reaction)
        rollup = target["reactions"]
        rollup[content] += 1
        rollup["total_count"] += 1
        return reaction, True

    def check_suite_id(self, repo: Repo, head_sha: str, app_id: int | None = None) -> int:
        """GitHub keeps one check suite per App and commit: each App's runs on a sha share it."""
        key = (repo.full_name.lower(), app_id or self.app_id, head_sha)
        if key not in self._suites:
            self._suites[key] = self.next_id("suite")
            # GitHub records the branch a suite was made for (the push's); it stays when the branch moves on.
            self._suite_branches[self._suites[key]] = next(
                (b for b, sha in repo.git.branches().items() if sha == head_sha), None)
        return self._suites[key]

    def create_pull(self, repo: Repo, *, title: str, body: str | None, author: dict[str, Any], head: str,
                    base: str, draft: bool, maintainer_can_modify: bool = True,
                    issue: dict[str, Any] | None = None, number: int | None = None) -> dict[str, Any]:
        if issue is None:
            issue = self.create_issue(repo, title=title, body=body, author=author, labels=[], number=number)
        number = issue["number"]
        issue["pull_request"] = {
            "url": f"{self.urls.api}/repos/{repo.full_name}/pulls/{number}",
            "html_url": f"{self.urls.html}/{repo.full_name}/pull/{number}",
            "diff_url": f"{self.urls.html}/{repo.full_name}/pull/{number}.diff",
            "patch_url": f"{self.urls.html}/{repo.full_name}/pull/{number}.patch",
            "merged_at": None,
        }
        issue["draft"] = draft
        pull = render.pull_request(self.urls, repo.full_name, self.next_id("pull"), number, title=title, body=body,
                                   author=author, head=self._pull_side(repo, head), base=self._pull_side(repo, base),
                                   draft=draft, maintainer_can_modify=maintainer_can_modify,
                                   created=issue["created_at"], association=self.association(repo, author["login"]))
        pull["comments"] = issue["comments"]
        self._pulls.append(pull)
        self._pull_index[(repo.full_name.lower(), number)] = pull
        return pull

    def _pull_side(self, repo: Repo, branch: str) -> dict[str, Any]:
        owner = self.user(repo.owner)
        return {
            "label": f"{repo.owner}:{branch}",
            "ref": branch,
            "sha": repo.git.resolve(branch) or "",
            "user": owner,
            "repo": self.render_repository(repo),
        }

    def refresh_pull(self, repo: Repo, pull: dict[str, Any]) -> dict[str, Any]:
        """Bring git-derived fields up to date: pushes move head.sha; the diff gives the figures."""
        for side in ("head", "base"):
            sha = repo.git.resolve(pull[side]["ref"])
            if sha:
                pull[side]["sha"] = sha
        issue = self._issue_index.get((repo.full_name.lower(), pull["number"]))
        if issue is not None:  # a pull request's labels are its issue's labels
            pull["labels"] = copy.deepcopy(issue["labels"])
        head, base = pull["head"]["sha"], pull["base"]["sha"]
        statuses = f"{self.urls.api}/repos/{repo.full_name}/statuses/{head}"
        pull["statuses_url"] = statuses
        pull["_links"]["statuses"]["href"] = statuses
        if head and base and repo.git.has_commit(head) and repo.git.has_commit(base):
            changes = repo.git.diff(base, head)
            pull["commits"] = repo.git.commit_count(base, head)
            pull["additions"] = sum(c.additions for c in changes)
            pull["deletions"] = sum(c.deletions for c in changes)
            pull["changed_files"] = len(changes)
        return pull
