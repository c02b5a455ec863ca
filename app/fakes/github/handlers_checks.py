"""Check runs: create, get, update, with GitHub's status/conclusion rules; list a ref's runs and a run's
annotations. Runs of other Apps (a repository's CI) are arranged with `fake.add_ci_check_run`."""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from . import render
from .rest import ApiRequest, ApiResponse, Handler, not_found, paginate, unprocessable

if TYPE_CHECKING:
    from .state import FakeGitHub, Repo

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


def add_run(fake: "FakeGitHub", repo: "Repo", app: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | ApiResponse:
    """A check run `app` creates (in its own check suite for the sha, as on GitHub), or GitHub's refusal."""
    head_sha = body["head_sha"]
    run = render.check_run(fake.urls, repo.full_name, fake.next_id("check"), name=body["name"], head_sha=head_sha,
                           suite_id=fake.check_suite_id(repo, head_sha, app["id"]), app=copy.deepcopy(app))
    refused = _apply(fake, run, body)
    if refused:
        return refused
    fake.check_runs.append(run)
    fake._check_index[run["id"]] = (repo.full_name.lower(), run)
    return run


async def create(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    repo = req.repo
    assert repo is not None
    head_sha = req.body["head_sha"]
    if not await asyncio.to_thread(repo.git.has_commit, head_sha):
        return unprocessable(message=f"No commit found for SHA: {head_sha}")
    made = add_run(fake, repo, fake.app, req.body)
    if isinstance(made, ApiResponse):
        return made
    return ApiResponse(201, await asyncio.to_thread(_with_pulls, fake, repo.full_name, made))


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


def latest(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`filter=latest`: of the runs one suite has under one name (a re-run adds one), the newest."""
    newest: dict[tuple[int, str], dict[str, Any]] = {}
    for run in runs:  # oldest first: the last one of a name wins
        newest[(run["check_suite"]["id"], run["name"])] = run
    return list(newest.values())


async def list_for_ref(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    """checks/list-for-ref: the runs on the commit a sha, branch (`heads/NAME` too) or tag names."""
    repo = req.repo
    assert repo is not None
    ref = req.params["ref"]
    sha = await asyncio.to_thread(repo.git.resolve, ref)
    if sha is None:
        return unprocessable(message=f"No commit found for SHA: {ref}")
    runs = fake.check_runs_for(repo.full_name, sha)
    if req.query.get("filter", "latest") == "latest":
        runs = latest(runs)
    wanted = {"check_name": "name", "status": "status"}
    for param, key in wanted.items():
        if param in req.query:
            runs = [r for r in runs if r[key] == req.query[param]]
    if "app_id" in req.query:
        runs = [r for r in runs if str(r["app"]["id"]) == req.query["app_id"]]
    page = paginate(req, runs)
    shown = [await asyncio.to_thread(_with_pulls, fake, repo.full_name, run) for run in page.body]
    return ApiResponse(200, {"total_count": len(runs), "check_runs": shown}, page.headers)


async def list_annotations(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    """checks/list-annotations: what the run's creator sent, every update's annotations in order."""
    run = _run(fake, req)
    if run is None:
        return not_found(f"{DOC}#list-check-run-annotations")
    assert req.repo is not None
    return paginate(req, [render.check_annotation(fake.urls, req.repo.full_name, run["head_sha"], given)
                          for given in fake.check_run_annotations(run["id"])])


HANDLERS: dict[str, Handler] = {
    "checks/create": create,
    "checks/get": get,
    "checks/update": update,
    "checks/list-for-ref": list_for_ref,
    "checks/list-annotations": list_annotations,
}
