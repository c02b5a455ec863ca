"""What the GitHub App needs, written once: the permissions and webhook events AgentVine uses, the
App manifest built from them (GitHub's manifest flow, `agentvine setup`), the section of
docs/github-app.md that lists them, and the one call of the flow, the code's conversion into the App.

tests/github/test_manifest.py holds this list to what the pipeline's tokens ask for
(app/pipeline/context.py, STEP_PERMISSIONS), to the events app/intake/routing handles and to the
docs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp
import gidgethub
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.github.client import USER_AGENT, RetryingGitHubAPI
from app.github.urls import GitHubUrls


@dataclass(frozen=True)
class Need:
    """A permission (`name` as GitHub spells it, `access`) or an event (`access` empty), and why."""

    name: str
    label: str  # as GitHub's settings page shows it
    access: str
    why: str


PERMISSIONS = (
    Need("contents", "Contents", "write", "clone, push the job's branch, read `.github/agentvine.yml`"),
    Need("issues", "Issues", "write", "👀, the tracking comment, questions and replies"),
    Need("pull_requests", "Pull requests", "write", "open and update the pull request, reviews, 👀 on review comments"),
    Need("checks", "Checks", "write", "the check run and its buttons; reading CI's failing checks on its pull requests"),
    Need("metadata", "Metadata", "read", "GitHub gives it to every App"),
)
# Only for repositories whose configuration sets `allow_workflow_changes: true` (`agentvine setup --workflows`).
WORKFLOWS = Need("workflows", "Workflows", "write", "only with `allow_workflow_changes: true` (`agentvine setup --workflows`)")
EVENTS = (
    Need("issues", "Issues", "", "a label starts a job"),
    Need("issue_comment", "Issue comment", "", "`/agentvine` commands, answers to questions"),
    Need("pull_request", "Pull request", "", "a label on a pull request starts a job there (a review); a push may ask for a review of what is new"),
    Need("pull_request_review_comment", "Pull request review comment", "", "a comment on a line of AgentVine's pull request"),
    Need("check_run", "Check run", "", "the check run's buttons and Re-run; a failing CI check on AgentVine's pull request"),
    Need("check_suite", "Check suite", "", "CI finished on AgentVine's pull request: a follow-up when it failed"),
)
# GitHub sends these to every App; a manifest cannot subscribe to them.
ALWAYS_SENT = (
    Need("installation", "Installation", "", "an uninstalled App cancels its pending work"),
    Need("installation_repositories", "Installation repositories", "", "so does a repository taken away"),
)
NAME_MAX = 34  # GitHub's limit for an App's name
DESCRIPTION = "Hands labelled issues to Claude Code in a locked-down container and reports back on GitHub."


def permissions(*, workflows: bool = False) -> dict[str, str]:
    return {need.name: need.access for need in (*PERMISSIONS, *((WORKFLOWS,) if workflows else ()))}


class HookAttributes(BaseModel):
    url: str
    active: bool = True


class AppManifest(BaseModel):
    """GitHub's App manifest ("Registering a GitHub App from a manifest")."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    url: str  # the App's homepage
    hook_attributes: HookAttributes
    redirect_url: str  # where GitHub sends the person back with the code
    description: str = DESCRIPTION
    public: bool = False  # only the account that creates it can install it
    default_permissions: dict[str, str]
    default_events: list[str]


def build_manifest(*, name: str, public_url: str, webhook_url: str, redirect_url: str, workflows: bool = False) -> AppManifest:
    return AppManifest(name=name, url=public_url, hook_attributes=HookAttributes(url=webhook_url),
                       redirect_url=redirect_url, default_permissions=permissions(workflows=workflows),
                       default_events=[need.name for need in EVENTS])


def registration_url(urls: GitHubUrls, state: str, org: str | None = None) -> str:
    """The page a browser posts the manifest to: the person's account, or an organization's."""
    where = f"/organizations/{quote(org, safe='')}/settings/apps/new" if org else "/settings/apps/new"
    return f"{urls.web}{where}?{urlencode({'state': state})}"


def app_settings_url(urls: GitHubUrls, slug: str, org: str | None = None) -> str:
    """The App's settings page (keys, webhook secret) on the GitHub it lives on."""
    owner = f"/organizations/{quote(org, safe='')}" if org else ""
    return f"{urls.web}{owner}/settings/apps/{quote(slug, safe='')}"


def docs_section() -> str:
    """The lists of docs/github-app.md, between its `manifest` markers (a test keeps them equal)."""
    lines = ["- **Repository permissions**:"]
    lines += [f"  - {n.label}: {'read & write' if n.access == 'write' else 'read'} ({n.why})" for n in PERMISSIONS]
    lines.append(f"  - {WORKFLOWS.label}: read & write, {WORKFLOWS.why}")
    lines.append("- **Subscribe to events**:")
    lines += [f"  - {n.label} (`{n.name}`): {n.why}" for n in EVENTS]
    lines.append("- Sent to every App without subscribing: "
                 + "; ".join(f"{n.label} (`{n.name}`): {n.why}" for n in ALWAYS_SENT) + ".")
    return "\n".join(lines)


# --- the code's conversion ---------------------------------------------------------------------


class ManifestError(Exception):
    """The manifest flow could not finish; the message says why and what to do."""


class CreatedApp(BaseModel):
    """What GitHub answers once for a code: the App, its private key and its webhook secret. Checked,
    since it goes into the settings file and the key must sign the App's JWT."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(gt=0)
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    name: str = Field(max_length=200)
    html_url: str = Field(pattern=r"^https?://[^\s\"'<>]+$", max_length=2000)
    pem: str = Field(max_length=20000)
    webhook_secret: str | None = Field(default=None, pattern=r"^[\x21-\x7e]{1,200}$")

    @field_validator("pem")
    @classmethod
    def _an_rsa_private_key(cls, pem: str) -> str:
        try:
            key = load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("the private key is not an unencrypted PEM key") from exc
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the private key is not an RSA key (the App's JWT is RS256)")
        return pem

    @property
    def install_url(self) -> str:
        return f"{self.html_url.rstrip('/')}/installations/new"


CODE_REFUSED = ("GitHub does not know this code: it is wrong, already used, or older than an hour "
                "(GitHub keeps it that long). Nothing was written; run `agentvine setup` again.")


async def convert_code(session: aiohttp.ClientSession, api_url: str, code: str) -> CreatedApp:
    """POST /app-manifests/{code}/conversions (no credentials: the code is one), checked."""
    api = RetryingGitHubAPI(session, USER_AGENT, base_url=api_url.rstrip("/"))
    api.max_attempts = 3  # a person waits in front of the browser: fail within seconds, not a minute
    try:
        answer = await api.post("/app-manifests/{code}/conversions", {"code": code}, data=b"")
    except gidgethub.BadRequest as exc:
        if exc.status_code == 404:
            raise ManifestError(CODE_REFUSED) from None
        raise ManifestError(f"GitHub refused the code ({exc.status_code}: {exc}).") from None
    except gidgethub.GitHubException as exc:
        raise ManifestError(f"GitHub failed to convert the code ({exc}); run `agentvine setup` again.") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ManifestError(f"cannot reach GitHub's API at {api_url} ({exc or type(exc).__name__}).") from None
    try:
        return CreatedApp.model_validate(answer)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors())
        raise ManifestError(f"GitHub's answer is not a usable App ({problems}). If it created one, delete it in "
                            "Settings → Developer settings → GitHub Apps, then run `agentvine setup` again.") from None
