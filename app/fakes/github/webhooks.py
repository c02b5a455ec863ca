"""Webhook payloads built from the fake's own objects, for the demo and for end-to-end tests.

They carry what GitHub puts in every delivery (action, repository, installation, sender) around
the objects you pass. They are not checked against the webhook JSON Schemas; tests that need
byte-exact deliveries should use the recorded examples in shared/testdata/github/webhooks/.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from app.web.signature import delivery_headers as _signed_headers
from app.web.signature import sign  # noqa: F401  (re-exported: tests and benchmarks sign with it)

if TYPE_CHECKING:
    from .state import FakeGitHub


def _repo_of(fake: "FakeGitHub", objects: dict[str, Any]) -> str | None:
    for key in ("issue", "pull_request", "comment", "check_run"):
        obj = objects.get(key)
        if not isinstance(obj, dict):
            continue
        for field in ("repository_url", "issue_url", "url"):
            url = obj.get(field, "")
            if "/repos/" in url:
                owner, name = url.split("/repos/", 1)[1].split("/")[:2]
                if fake.find_repo(owner, name):
                    return f"{owner}/{name}"
    return None


def build(fake: "FakeGitHub", event: str, action: str | None, *, repo: str | None = None,
          sender: str | None = None, **objects: Any) -> dict[str, Any]:
    """`{"action", <objects>, "repository", "installation", "sender"}` for `event`."""
    payload: dict[str, Any] = {} if action is None else {"action": action}
    payload.update({k: copy.deepcopy(v) for k, v in objects.items()})
    full_name = repo or _repo_of(fake, objects)
    if full_name:
        r = fake.repo(full_name)
        payload["repository"] = fake.render_repository(r)
        inst = fake.installations[r.installation_id]
        payload["installation"] = {"id": inst["id"], "node_id": f"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u{inst['id']}"}
    payload["sender"] = fake.user(sender) if sender else fake.user(fake.bot["login"])
    return payload


def retarget(payload: dict[str, Any], *, repo: dict | None = None, installation_id: int | None = None,
             sender: str | None = None, sender_type: str = "User") -> dict[str, Any]:
    """One of GitHub's recorded example payloads, about `repo` (a repository object as the fake
    renders it) and from `sender`: the rest stays byte for byte as GitHub wrote it."""
    payload = copy.deepcopy(payload)
    if repo is not None:
        keys = ("id", "name", "full_name", "owner", "default_branch", "private", "html_url", "url")
        payload["repository"] = {**payload["repository"], **{k: repo[k] for k in keys if k in repo}}
    if installation_id is not None:
        payload["installation"] = {"id": installation_id, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
    if sender is not None:
        payload["sender"] = {**payload["sender"], "login": sender, "type": sender_type}
    return payload


def labeled_issue(example: dict[str, Any], *, label: str, issue: dict | None = None, **target: Any) -> dict[str, Any]:
    """GitHub's `issues.labeled` example, retargeted, for `label` added to `issue`."""
    payload = retarget(example, **target)
    payload["label"] = {**payload["label"], "name": label}
    if issue is not None:
        keys = ("id", "number", "title", "body", "labels", "state", "user", "html_url", "url")
        payload["issue"] = {**payload["issue"], **{k: issue[k] for k in keys if k in issue}}
    payload["issue"]["labels"] = [*payload["issue"].get("labels", []), payload["label"]]
    return payload


def delivery_headers(event: str, body: bytes, secret: str, delivery_id: str | None = None) -> dict[str, str]:
    """The headers GitHub sends with a delivery of `body`, signed as production code signs
    (app/web/signature.py: `agentvine replay` makes the same)."""
    return _signed_headers(event, body, secret, delivery_id, user_agent="GitHub-Hookshot/fake")


def signed_delivery(payload: dict[str, Any], event: str, secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers GitHub would POST."""
    body = json.dumps(payload).encode()
    return body, delivery_headers(event, body, secret)
