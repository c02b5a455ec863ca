"""Check runs: create, get, update, with GitHub's status/conclusion rules."""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from . import render
from .rest import ApiRequest, ApiResponse, Handler, not_found, unprocessable

if TYPE_CHECKING:
    from .state import FakeGitHub

DOC = "https://docs.github.com/rest/checks/runs"


def _apply(fake: "FakeGitHub", run: dict[str, Any], body: dict[str, Any]) -> ApiResponse | None:
    """Apply a create/update body to a run; a response if GitHub would refuse it."""
    for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
        if key in body:
            run[key] = body[key]
    status = body.get("status")
    conclusion = body.get("conclusion")
    if conclusion is not None:
        if conclusion == "stale":
            return unprocessable([{"resource": "CheckRun", "field": "conclusion", "code": "invalid"}],
                                 message="Invalid request.\n\nOnly GitHub can set a check run conclusion of stale.")
        # "Providing conclusion will automatically set the status parameter to completed."
        run["status"], run["conclusion"] = "completed", conclusion
        run["completed_at"] = body.get("completed_at") or run["completed_at"] or render.now_iso()
    elif status is not None:
        if status in ("waiting", "requested", "pending"):
            return unprocessable(message=f"Invalid request.\n\nOnly GitHub Actions can set a status of {status}.")
        if status == "completed":
            return unprocessable(message="Invalid request.\n\n\"conclusion\" is required when \"status\" is \"completed\".")
        run["status"], run["conclusion"], run["completed_at"] = status, None, None
    elif "completed_at" in body and run["conclusion"] is None:
        return unprocessable(message="Invalid request.\n\n\"conclusion\" is required when \"completed_at\" is provided.")
    if run["status"] in ("in_progress", "completed") and not run["started_at"]:
        run["started_at"] = render.now_iso()
    if "output" in body:
        output = body["output"]
        run["output"]["title"] = output.get("title")
        run["output"]["summary"] = output.get("summary")
        run["output"]["text"] = output.get("text", run["output"]["text"])
        # Annotations accumulate across updates (GitHub appends them).
        annotations = fake._check_annotations.setdefault(run["id"], [])
        annotations.extend(output.get("annotations", []))
        run["output"]["annotations_count"] = len(annotations)
    if "actions" in body:
        fake._check_actions[run["id"]] = list(body["actions"])
    return None


def _with_pulls(fake: "FakeGitHub", full_name: str, run: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(run)
    out["pull_requests"] = [
        render.pull_minimal(fake.refresh_pull(fake.repo(full_name), p))
        for (repo, _), p in list(fake._pull_index.items())  # runs in a worker thread
        if repo == full_name.lower() and p["state"] == "open" and fake.repo(full_name).git.resolve(p["head"]["ref"]) == run["head_sha"]
    ]
    return out


async def create(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    repo = req.repo
    assert repo is not None
    body = req.body
    head_sha = body["head_sha"]
    if not await asyncio.to_thread(repo.git.has_commit, head_sha):
        return unprocessable(message=f"No commit found for SHA: {head_sha}")
    run = render.check_run(fake.urls, repo.full_name, fake.next_id("check"), name=body["name"], head_sha=head_sha,
                           suite_id=fake.check_suite_id(repo, head_sha), app=copy.deepcopy(fake.app))
    refused = _apply(fake, run, body)
    if refused:
        return refused
    fake.check_runs.append(run)
    fake._check_index[run["id"]] = (repo.full_name.lower(), run)
    return ApiResponse(201, await asyncio.to_thread(_with_pulls, fake, repo.full_name, run))


def _run(fake: "FakeGitHub", req: ApiRequest) -> dict[str, Any] | None:
    assert req.repo is not None
    found = fake._check_index.get(req.int_param("check_run_id"))
    return found[1] if found and found[0] == req.repo.full_name.lower() else None


async def get(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    run = _run(fake, req)
    if run is None:
        return not_found(f"{DOC}#get-a-check-run")
    assert req.repo is not None
    return ApiResponse(200, await asyncio.to_thread(_with_pulls, fake, req.repo.full_name, run))


async def update(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    run = _run(fake, req)
    if run is None:
        return not_found(f"{DOC}#update-a-check-run")
    assert req.repo is not None
    candidate = copy.deepcopy(run)
    refused = _apply(fake, candidate, req.body)
    if refused:
        return refused
    run.clear()
    run.update(candidate)
    return ApiResponse(200, await asyncio.to_thread(_with_pulls, fake, req.repo.full_name, run))


HANDLERS: dict[str, Handler] = {
    "checks/create": create,
    "checks/get": get,
    "checks/update": update,
}
