"""`agentvine replay --embedded`: a saved payload through AgentVine with no service and no GitHub App.

As the demo does, it starts the embedded GitHub (REST + git) and a scripted model API whose one turn
says it only looked, arranges the GitHub from the payload (replay_scene.py: the installation, the
repository, the sender with --sender-permission, the issue or pull request under the payload's
number, the comment under its id), runs AgentVine in this process (app.assembly.Service, the worker
beside the web app) with the real sandbox, delivers the file's bytes signed to its /webhooks (the
same client as a replay to a service), waits until the delivery's jobs ended, and prints what
AgentVine did there. Like the demo, this module runs on the fakes (tests/test_layout.py allows it)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from app.assembly import Service
from app.demo import sandbox_problem
from app.domain.job import JobState
from app.fakes.github.state import FakeGitHub
from app.fakes.github.testing import running_fake, serving
from app.fakes.model_api import FakeModelAPI, ScriptedTurn, serve_fake_model_api
from app.operator.replay import PROG, ReplayError, ReplayRequest
from app.operator.replay_scene import Scene, SceneError, scene_from_payload
from app.operator.replay_service import DeliveryReport, plain, print_report, send_and_follow
from app.settings import Settings

# The scripted model's one answer. Its empty report (a ```json block, app/pipeline/review/report.py) lets
# a review job end as one; a change job ends with nothing to change.
LOOKED_ONLY = (
    "This is a replay on the embedded GitHub: I only looked at the repository and changed nothing.\n\n"
    '```json\n{"summary": "A replay on the embedded GitHub: I only looked.", "findings": []}\n```'
)
REACTION_EMOJI = {"+1": "👍", "-1": "👎", "laugh": "😄", "confused": "😕", "heart": "❤️", "hooray": "🎉",
                  "rocket": "🚀", "eyes": "👀"}
README = "# {name}\n\nMade by `agentvine replay --embedded`: the embedded GitHub has none of the real repository's files.\n"
PULL_HEAD_FILE = "The head of pull request #{number}, made by `agentvine replay --embedded`.\n"
UNTITLED = "(untitled)"
MAX_COMMENT_LINES = 40

STARTING = "starting the embedded GitHub (REST API + git) and a scripted model API that only looks"
ARRANGED = "arranged {repo} (installation {installation}) and @{sender} with {permission} permission{item}"
LISTENING = "AgentVine is listening on {url} (sandbox image {image}); delivering {path}"
STILL_RUNNING = "the delivery's jobs did not end within {wait:g} s (--wait); what they did so far:"
DID = "\nWhat AgentVine did on the embedded GitHub:"
DID_NOTHING = "  nothing"
REACTION = "  {emoji} ({content}) on {where}"
COMMENT = "  comment on #{number}: {url}"
CHECK_RUN = "  check run “{name}”: {status}{conclusion} — {title}"
PULL = "  pull request #{number} ({kind}): {title}\n    {url}"
REVIEW = "  review of #{number} ({state}): {url}"
JOB = "job {job_id}: {state}{conclusion}{reason}"
VIOLATIONS = "the embedded GitHub saw calls that GitHub's API description does not allow (a bug in AgentVine):"


def _account_type(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else "User"


def _arrange_pull(github: FakeGitHub, scene: Scene) -> None:
    """The pull request under the payload's number, with a head branch of one placeholder commit."""
    item, repo = scene.item, scene.repository
    assert item is not None
    base = item.base.ref if item.base else repo.default_branch
    head = item.head.ref if item.head and item.head.ref not in (base, repo.default_branch) else f"replay/pull-{item.number}"
    if github.repo(repo.full_name).git.resolve(base) is None:
        github.push_files(repo.full_name, base, {"BASE.md": f"The base branch {base}.\n"})
    github.push_files(repo.full_name, head, {"REPLAY.md": PULL_HEAD_FILE.format(number=item.number)}, base=base)
    github.add_pull(repo.full_name, head=head, base=base, title=item.title or UNTITLED, body=item.body or "",
                    user=item.author, draft=item.draft, number=item.number)
    stored = github.issue(repo.full_name, item.number)  # the fake's own object: a pull request's labels are its issue's
    stored["labels"] = [github.add_label(repo.full_name, name) for name in scene.label_names]


def arrange(github: FakeGitHub, scene: Scene, event: str, permission: str) -> str:
    """The embedded GitHub as the payload describes it; a line saying what was arranged."""
    repo = scene.repository
    owner_type = _account_type(repo.owner.type if repo.owner else "User", ("User", "Organization"))
    github.add_installation(scene.installation.id, repo.owner_login, account_type=owner_type)
    github.add_repo(repo.full_name, installation_id=scene.installation.id, default_branch=repo.default_branch,
                    private=repo.private, files={"README.md": README.format(name=repo.full_name.partition("/")[2])})
    github.add_user(scene.sender.login, type=_account_type(scene.sender.type, ("User", "Bot", "Organization")))
    github.set_permission(repo.full_name, scene.sender.login, permission)
    item, what = scene.item, ""
    if item is not None and scene.is_pull:
        _arrange_pull(github, scene)
        what = f", pull request #{item.number}"
    elif item is not None:
        github.add_issue(repo.full_name, title=item.title or UNTITLED, body=item.body or "", user=item.author,
                         labels=scene.label_names, number=item.number)
        what = f", issue #{item.number}"
    if item is not None and scene.comment is not None and event == "issue_comment":
        author = scene.comment.user.login if scene.comment.user else scene.sender.login
        github.add_comment(repo.full_name, item.number, body=scene.comment.body or "", user=author,
                           comment_id=scene.comment.id)
        what += f" and comment {scene.comment.id}"
    return ARRANGED.format(repo=repo.full_name, installation=scene.installation.id, sender=scene.sender.login,
                           permission=permission, item=what)


def _settings(base: Settings, github: FakeGitHub, model: FakeModelAPI, model_url: str, work: Path) -> Settings:
    """The operator's settings (limits, sandbox image, bot config) with GitHub, the model and the data
    directory replaced by the embedded ones."""
    return base.model_copy(update={
        "app_id": github.app_id, "private_key": SecretStr(github.private_key_pem), "private_key_path": None,
        "webhook_secret": SecretStr(secrets.token_hex(16)), "github_api_url": github.api_url, "git_url": github.url,
        "data_dir": work / "agentvine", "model_api_url": model_url, "anthropic_api_key": SecretStr(model.api_key),
        "progress_interval": min(base.progress_interval, 1.0),
    })


def _print_comment(comment: dict[str, Any]) -> None:
    number = comment["issue_url"].rsplit("/", 1)[-1]
    print(COMMENT.format(number=number, url=comment["html_url"]))
    lines = (comment.get("body") or "").splitlines()
    for line in lines[:MAX_COMMENT_LINES]:
        print("    " + plain(line))
    if len(lines) > MAX_COMMENT_LINES:
        print(f"    … ({len(lines) - MAX_COMMENT_LINES} more lines)")


def print_github(github: FakeGitHub, scene: Scene) -> None:
    """Everything AgentVine's bot did on the embedded GitHub (nothing else writes to it)."""
    bot = github.bot["login"]
    repo, item = scene.repository.full_name, scene.item
    print(DID)
    reactions = [(r, f"#{item.number}") for r in github.reactions_on_issue(repo, item.number)] if item else []
    if scene.comment is not None:
        reactions += [(r, f"comment {scene.comment.id}") for r in github.reactions_on_comment(scene.comment.id)]
    comments = [c for c in github.comments if c["user"]["login"] == bot]
    pulls = [p for p in github.pulls if p["user"]["login"] == bot]
    reviews = [r for r in github.reviews if r["user"]["login"] == bot]
    for reaction, where in reactions:
        print(REACTION.format(emoji=REACTION_EMOJI.get(reaction["content"], ""), content=reaction["content"], where=where))
    for comment in comments:
        _print_comment(comment)
    for run in github.check_runs:
        conclusion = f" → {run['conclusion']}" if run.get("conclusion") else ""
        print(CHECK_RUN.format(name=run["name"], status=run["status"], conclusion=conclusion,
                               title=plain(run["output"].get("title") or "")))
    for pull in pulls:
        print(PULL.format(number=pull["number"], kind="draft" if pull["draft"] else "ready for review",
                          title=plain(pull["title"]), url=pull["html_url"]))
    for review in reviews:
        print(REVIEW.format(number=review["pull_request_url"].rsplit("/", 1)[-1], state=review["state"],
                            url=review["html_url"]))
    if not (reactions or comments or github.check_runs or pulls or reviews):
        print(DID_NOTHING)
    if github.violations:
        print(VIOLATIONS, *(f"  {v}" for v in github.violations), sep="\n", file=sys.stderr)


@dataclasses.dataclass
class Run:
    """What became of the delivery in the embedded AgentVine."""

    report: DeliveryReport | None = None
    ended: bool = True  # its jobs ended (or wait: for an approval, an answer) within --wait
    jobs: list[str] = dataclasses.field(default_factory=list)  # a line for each
    failed: bool = False


def _job_lines(service: Service, run: Run) -> None:
    for job_id in run.report.jobs if run.report else []:
        job = service.store.get_job(job_id)
        if job is not None:
            run.failed = run.failed or job.state is JobState.FAILED
            run.jobs.append(JOB.format(job_id=job.id, state=job.state.value, reason=f": {plain(job.reason)}" if job.reason else "",
                                       conclusion=f" ({job.conclusion})" if job.conclusion else ""))


async def _run_service(request: ReplayRequest, settings: Settings) -> Run:
    """AgentVine in this process: the delivery sent to it, and its jobs waited for."""
    service, run = Service(settings), Run()
    async with serving(service.make_app()) as url:  # its store closes when it stops
        service.settings.public_url = url
        print(LISTENING.format(url=url, image=settings.sandbox_image, path=request.saved.path), flush=True)
        local = dataclasses.replace(request, settings=settings, url=url, delivery_id=None)
        async with aiohttp.ClientSession() as http:
            run.report = await send_and_follow(http, local)
        if run.report is not None:  # the jobs and commands it asked for
            try:
                await service.dispatcher.wait_idle(timeout=max(request.wait, 1.0))
            except TimeoutError:
                run.ended = False
        _job_lines(service, run)
    return run


async def replay_embedded(request: ReplayRequest, scene: Scene) -> int:
    work = Path(tempfile.mkdtemp(prefix="agentvine-replay-"))
    work.chmod(0o711)  # host git runs as an unprivileged user and must pass through (app/agent/boundary/hostgit.py)
    model = FakeModelAPI([ScriptedTurn(text=LOOKED_ONLY)])
    print(STARTING, flush=True)
    try:
        async with running_fake(work) as github, serve_fake_model_api(model) as model_server:
            print(arrange(github, scene, request.saved.event, request.sender_permission), flush=True)
            settings = _settings(request.settings, github, model, model_server.url, work)
            run = await _run_service(request, settings)
            if not run.ended:
                print(STILL_RUNNING.format(wait=request.wait))
            print_github(github, scene)
            if run.report is None:
                return 0
            print()
            code = print_report(run.report, None)  # the jobs' pages went with the embedded service
            print("\n".join(run.jobs))
            return code or (0 if run.ended and not run.failed else 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(request: ReplayRequest) -> int:
    try:
        scene = scene_from_payload(request.saved.payload)
    except SceneError as exc:
        raise ReplayError(str(exc)) from None
    problem = sandbox_problem(request.settings.sandbox_image, PROG + " --embedded")
    if problem:
        raise ReplayError(problem)
    return asyncio.run(replay_embedded(request, scene))

