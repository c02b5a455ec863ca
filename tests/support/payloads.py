"""Variants of GitHub's real example payloads, pointed at the repository a test set up.

The example files stay as GitHub wrote them; a test states only what it changes."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.support.env import WEBHOOKS


def load(event: str, name: str) -> dict[str, Any]:
    return json.loads((WEBHOOKS / event / name).read_text())


def retarget(payload: dict[str, Any], *, repo: dict | None = None, installation_id: int | None = None,
             sender: str | None = None, sender_type: str = "User") -> dict[str, Any]:
    """The same event, about `repo` (a repository object as the fake renders it), from `sender`."""
    payload = copy.deepcopy(payload)
    if repo is not None:
        payload["repository"] = {**payload["repository"], **{k: repo[k] for k in ("id", "name", "full_name", "owner", "default_branch", "private", "html_url", "url") if k in repo}}
    if installation_id is not None:
        payload["installation"] = {"id": installation_id, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
    if sender is not None:
        payload["sender"] = {**payload["sender"], "login": sender, "type": sender_type}
    return payload


def labeled_issue(*, label: str, issue: dict | None = None, **target: Any) -> dict[str, Any]:
    payload = retarget(load("issues", "labeled.payload.json"), **target)
    payload["label"] = {**payload["label"], "name": label}
    if issue is not None:
        payload["issue"] = {**payload["issue"], **{k: issue[k] for k in ("id", "number", "title", "body", "labels", "state", "user", "html_url", "url") if k in issue}}
    payload["issue"]["labels"] = [*payload["issue"].get("labels", []), payload["label"]]
    return payload


def issue_comment(*, body: str, issue: dict | None = None, action: str = "created", **target: Any) -> dict[str, Any]:
    payload = retarget(load("issue_comment", f"{action}.payload.json"), **target)
    payload["comment"] = {**payload["comment"], "body": body}
    if target.get("sender"):
        payload["comment"]["user"] = payload["sender"]
    if issue is not None:
        payload["issue"] = {**payload["issue"], **{k: issue[k] for k in ("id", "number", "title", "body", "labels", "pull_request") if k in issue}}
    return payload


def check_run_button(*, external_id: str, check_run_id: int, identifier: str | None, **target: Any) -> tuple[str, dict[str, Any]]:
    """A click on a check run: a requested action (identifier), or Re-run (identifier None)."""
    name = "requested_action.payload.json" if identifier else "rerequested.payload.json"
    payload = retarget(load("check_run", name), **target)
    payload["check_run"] = {**payload["check_run"], "id": check_run_id, "external_id": external_id}
    if identifier:
        payload["requested_action"] = {"identifier": identifier}
    return "check_run", payload
