"""Variants of GitHub's real example payloads, pointed at the repository a test set up.

The example files stay as GitHub wrote them; a test states only what it changes."""

from __future__ import annotations

import json
from typing import Any

from app.fakes.github import webhooks
from app.fakes.github.webhooks import retarget
from tests.support.env import WEBHOOKS


def load(event: str, name: str) -> dict[str, Any]:
    return json.loads((WEBHOOKS / event / name).read_text())


def labeled_issue(*, label: str, issue: dict | None = None, **target: Any) -> dict[str, Any]:
    return webhooks.labeled_issue(load("issues", "labeled.payload.json"), label=label, issue=issue, **target)


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


def check_suite_completed(suite: dict[str, Any], **target: Any) -> dict[str, Any]:
    """GitHub's `check_suite.completed` example about `suite` (as the fake's `check_suite` renders it)."""
    payload = retarget(load("check_suite", "completed.payload.json"), **target)
    payload["check_suite"] = {**payload["check_suite"], **suite}
    return payload


def check_run_completed(run: dict[str, Any], suite: dict[str, Any], **target: Any) -> dict[str, Any]:
    """GitHub's `check_run.completed` example of a failure, about `run` (the fake's) in `suite`."""
    payload = retarget(load("check_run", "completed.1.payload.json"), **target)
    keys = ("id", "head_sha", "external_id", "url", "html_url", "status", "conclusion", "output", "name", "app")
    in_suite = ("id", "head_branch", "head_sha", "status", "conclusion", "pull_requests", "app")
    payload["check_run"] = {**payload["check_run"], **{k: run[k] for k in keys},
                            "check_suite": {**payload["check_run"]["check_suite"], **{k: suite[k] for k in in_suite}},
                            "pull_requests": suite["pull_requests"]}
    return payload


def synchronize(*, pull: dict, before: str, after: str, labels: tuple[str, ...] = (), **target: Any) -> dict[str, Any]:
    """GitHub's `pull_request.synchronize` example (a push to the pull request's branch), retargeted at
    `pull` (as the fake renders it), moved from `before` to `after`, with `labels` on the pull request."""
    payload = retarget(load("pull_request", "synchronize.payload.json"), **target)
    example = payload["pull_request"]
    payload["number"], payload["before"], payload["after"] = pull["number"], before, after
    payload["pull_request"] = {
        **example, **{k: pull[k] for k in ("id", "number", "title", "body", "state", "html_url", "url") if k in pull},
        "head": {**example["head"], "ref": pull["head"]["ref"], "sha": after},
        "labels": [{**example["labels"][0], "name": name} for name in labels],
    }
    return payload
