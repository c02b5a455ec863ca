"""Small readers for the parts of webhook payloads every router needs."""

from __future__ import annotations

from typing import Any


def installation_id(data: dict[str, Any]) -> int | None:
    inst = data.get("installation")
    return inst.get("id") if isinstance(inst, dict) else None


def repo_fields(data: dict[str, Any]) -> tuple[str, str]:
    repo = data["repository"]
    return repo["full_name"], repo.get("default_branch") or "main"


def sender_login(data: dict[str, Any]) -> str:
    return (data.get("sender") or {}).get("login", "")
