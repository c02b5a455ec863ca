"""Where a GitHub lives: its web pages, its REST API and its git remotes, for github.com, a GitHub
Enterprise Server (`https://HOST`, the API under `/api/v3`) or GitHub Enterprise Cloud with data
residency (`https://NAME.ghe.com`, the API at `https://api.NAME.ghe.com`)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

GITHUB_COM = "https://github.com"
GITHUB_COM_API = "https://api.github.com"


class GitHubUrlError(ValueError):
    """A GitHub address that cannot be used; the message says why."""


@dataclass(frozen=True)
class GitHubUrls:
    web: str  # pages people open: https://github.com, https://HOST
    api: str  # the REST API's root
    git: str  # what `owner/name.git` is appended to for clone and push

    @property
    def is_github_com(self) -> bool:
        return self.web == GITHUB_COM and self.api == GITHUB_COM_API and self.git == GITHUB_COM


def _checked(url: str, what: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GitHubUrlError(f"{what} must be an http(s) address such as https://github.example.com, not {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise GitHubUrlError(f"{what} must be a plain address, without a query, a fragment or credentials: {url!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def github_urls(web_url: str = GITHUB_COM, api_url: str | None = None) -> GitHubUrls:
    """The addresses of the GitHub at `web_url`; `api_url` overrides where its REST API is."""
    web = _checked(web_url, "the GitHub address")
    host = urlsplit(web).hostname or ""
    if host == "api.github.com" or "/api/" in f"{web}/":
        raise GitHubUrlError(f"give the GitHub's web address (https://github.com or https://HOST), not its API: {web}")
    if host in ("github.com", "www.github.com"):
        web, default_api = GITHUB_COM, GITHUB_COM_API
    elif host.endswith(".ghe.com"):
        default_api = f"https://api.{host}"
    else:
        default_api = f"{web}/api/v3"
    api = _checked(api_url, "the API address") if api_url else default_api
    return GitHubUrls(web=web, api=api, git=web)
