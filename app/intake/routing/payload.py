"""Small readers for the parts of webhook payloads every router needs."""

from __future__ import annotations

from typing import Any

from app.domain.intents import StartJob
from app.domain.job import Trigger


def installation_id(data: dict[str, Any]) -> int | None:
    inst = data.get("installation")
    return inst.get("id") if isinstance(inst, dict) else None


def repo_fields(data: dict[str, Any]) -> tuple[str, str]:
    repo = data["repository"]
    return repo["full_name"], repo.get("default_branch") or "main"


def sender_login(data: dict[str, Any]) -> str:
    return (data.get("sender") or {}).get("login", "")


def start_job(data: dict[str, Any], item: dict[str, Any], *, installation: int, trigger: Trigger,
              is_pull: bool, head_sha: str | None = None) -> StartJob:
    """A job about `item` (the issue or pull request object of the payload), asked for by its sender."""
    repo, default_branch = repo_fields(data)
    return StartJob(
        installation_id=installation,
        repo=repo,
        default_branch=default_branch,
        issue_number=item["number"],
        is_pull_request=is_pull,
        issue_title=item.get("title") or "",
        requester=sender_login(data),
        requester_id=(data.get("sender") or {}).get("id"),
        trigger=trigger,
        labels=[label.get("name", "") for label in item.get("labels") or []],
        head_sha=head_sha,
    )
