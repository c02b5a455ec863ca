"""`agentvine demo`: the whole flow on one machine, with no GitHub App and no API key.

It starts the embedded GitHub fake (REST + git) and a scripted model API, runs AgentVine
against them with the real sandbox (Docker) and the real Claude Code CLI, labels a demo issue,
and prints what a person would see on GitHub as it happens. The demo repository asks for the
`full` sandbox image, so the agent runs its tests with `python3` before and after the fix, and
the demo prints what python3 printed in the sandbox."""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.agent.sandbox.recipe import PROFILE_IMAGES
from app.assembly import Service
from app.domain.job import Job
from app.fakes.github.state import FakeGitHub
from app.fakes.github.testing import deliver, running_fake, serving
from app.fakes.model_api import FakeModelAPI, ScriptedTurn, ToolUse, serve_fake_model_api
from app.settings import Settings

REPO = "demo-org/wordcount"
INSTALLATION = 1
WORDCOUNT = '''"""Count the words of a text file."""
import sys


def count_words(line):
    return len([w for w in line.split(" ") if w])


if __name__ == "__main__":
    print(sum(count_words(line) for line in open(sys.argv[1])))
'''
TESTS = '''import unittest

from wordcount import count_words


class CountWords(unittest.TestCase):
    def test_spaces(self):
        self.assertEqual(count_words("a b  c"), 3)

    def test_tabs(self):
        self.assertEqual(count_words("a\\tb"), 2)


if __name__ == "__main__":
    unittest.main()
'''
# The demo repository's own configuration: the image with Python in it (docs/configuration.md).
REPO_CONFIG = "sandbox:\n  image: full\nverify: ['python3 -m unittest']\n"  # the PR says "Verified"
DEMO_IMAGE = PROFILE_IMAGES["full"]
ISSUE_BODY = "`count_words('a\\tb')` returns 1: words separated by a tab are counted as one."
RUN_TESTS = "python3 --version && python3 -m unittest -v 2>&1"
SCRIPT = [
    ScriptedTurn(text="Let me look at how lines are split, and run the tests first.",
                 tool_uses=[ToolUse(name="Read", input={"file_path": "/workspace/wordcount.py"}),
                            ToolUse(name="Bash", input={"command": RUN_TESTS})]),
    ScriptedTurn(text="`split(\" \")` only splits on spaces; `split()` splits on any whitespace.",
                 tool_uses=[ToolUse(name="Edit", input={"file_path": "/workspace/wordcount.py",
                                                        "old_string": 'line.split(" ")', "new_string": "line.split()"})]),
    ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": RUN_TESTS})]),
    ScriptedTurn(text="Fixed: `count_words` now splits on any whitespace (`str.split()` with no argument), "
                      "so tabs separate words like spaces do. Verified: `python3 -m unittest` passed (2 tests; "
                      "`test_tabs` failed before the change)."),
]


class Narrator:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.began:5.1f}s] {text}", flush=True)


async def _watch(github, say, issue_number: int, done: asyncio.Event) -> None:
    seen: set[str] = set()
    activity_seen: set[str] = set()
    while not done.is_set():
        if github.reactions_on_issue(REPO, issue_number) and "eyes" not in seen:
            seen.add("eyes")
            say("👀  AgentVine reacted on the issue")
        for comment in github.comments_on(REPO, issue_number):
            if comment["user"]["type"] == "Bot" and "comment" not in seen:
                seen.add("comment")
                say(f"💬  tracking comment posted: {comment['html_url']}")
            if comment["user"]["type"] == "Bot":
                for line in comment["body"].splitlines():
                    if line.startswith("- ") and not line.startswith("- [") and line not in activity_seen:
                        activity_seen.add(line)
                        say(f"    activity {line[2:]}")
        for run in github.check_runs_for(REPO):
            key = f"check:{run['status']}:{run.get('conclusion')}"
            if key not in seen:
                seen.add(key)
                state = run["status"] + (f" → {run['conclusion']}" if run.get("conclusion") else "")
                say(f"✅  check run “{run['name']}”: {state}")
        await asyncio.sleep(0.2)


def _arrange(github: FakeGitHub) -> dict[str, Any]:
    """The demo organisation, its repository, a maintainer, and the issue they will label."""
    github.add_installation(INSTALLATION, "demo-org", account_type="Organization")
    github.add_repo(REPO, installation_id=INSTALLATION, files={
        "wordcount.py": WORDCOUNT, "test_wordcount.py": TESTS, "README.md": "# wordcount\n",
        ".github/agentvine.yml": REPO_CONFIG})
    github.add_user("maintainer")
    github.set_permission(REPO, "maintainer", "write")
    return github.add_issue(REPO, title="Words separated by tabs are counted as one", body=ISSUE_BODY, user="maintainer")


def _settings(github: FakeGitHub, model: FakeModelAPI, model_url: str, work: Path, secret: str) -> Settings:
    return Settings(
        app_id=github.app_id, private_key=github.private_key_pem, webhook_secret=secret,
        github_api_url=github.url, git_url=github.url, data_dir=work / "agentvine",
        model_api_url=model_url, ANTHROPIC_API_KEY=model.api_key, progress_interval=1.0,
    )


async def _label(github: FakeGitHub, service: Service, issue: dict[str, Any], say) -> str:
    """The maintainer labels the issue and GitHub delivers the webhook; the delivery's id once the
    job has run its course (the narration follows it as it goes)."""
    say(f"@maintainer adds the label agentvine:bugfix to {REPO}#{issue['number']}: “{issue['title']}”")
    issue["labels"].append(github.ensure_label(github.repo(REPO), "agentvine:bugfix"))
    payload = github.webhook("issues", "labeled", repo=REPO, sender="maintainer", issue=issue,
                             label=github.labels[REPO]["agentvine:bugfix"])
    done = asyncio.Event()
    watcher = asyncio.create_task(_watch(github, say, issue["number"], done))
    secret = service.settings.webhook_secret.get_secret_value()
    status, answer = await deliver(f"{service.settings.public_url}/webhooks", "issues", payload, secret)
    say(f"GitHub delivered the webhook: {status} {answer['status']}")
    try:
        await service.dispatcher.wait_idle(timeout=240)
    finally:
        await asyncio.sleep(0.5)
        done.set()
        await watcher
    return answer["delivery"]


def _finished_job(service: Service, delivery: str, say) -> Job | None:
    """The job the delivery started, if it ran its course; otherwise None, after saying so."""
    job_ids = service.store.delivery_jobs(delivery)
    job = service.store.get_job(job_ids[0]) if job_ids else None
    print()
    if job is None or job.outcome is None:
        say(f"the job did not finish: {job.state if job else 'missing'} {job.reason if job else ''}")
        return None
    return job


def _test_runs(model: FakeModelAPI) -> list[str]:
    """What the sandbox answered to each `python3 -m unittest` the agent ran (the real output)."""
    outputs = []
    for result in model.tool_results():
        content = result.get("content")
        text = content if isinstance(content, str) else "".join(
            b.get("text", "") for b in content or [] if isinstance(b, dict))
        if "Ran " in text:  # Claude Code appends a reminder of its own to what the command printed
            outputs.append(text.split("<system-reminder>")[0])
    return outputs


def _report(github: FakeGitHub, service: Service, job: Job, model: FakeModelAPI, say) -> int:
    """What a person would look at: the job's outcome, the tests it ran, its pull request and the change;
    the exit code."""
    outcome = job.outcome
    say(f"job {job.id}: {job.state.value} ({outcome.conclusion}) — {outcome.title}")
    for number, output in enumerate(_test_runs(model), 1):
        print(f"\n  The agent ran `{RUN_TESTS}` in the sandbox ({number}), which printed:")
        print("  | " + "\n  | ".join(output.strip().splitlines()))
    if outcome.pr_number:
        pull = github.pull(REPO, outcome.pr_number)
        print(f"\n  Pull request #{pull['number']}: {pull['title']}  ({'draft' if pull['draft'] else 'ready'})")
        print(f"  {pull['html_url']}\n")
        print("  " + "\n  ".join(pull["body"].splitlines()))
        diff = github.repo(REPO).git.git("diff", f"main...{job.branch}").decode()
        print("\n  The change:\n  " + "\n  ".join(diff.splitlines()))
    print(
        "\nWhere to look next:\n"
        f"  - the job's page: {service.settings.public_url}/jobs/{job.id}\n"
        "  - docs/usage.md: labels, commands and what appears on GitHub\n"
        "  - README.md, 'Running it for real': connect a GitHub App\n"
    )
    return 0 if outcome.conclusion == "success" else 1


async def run_demo(keep_running: bool) -> int:
    say = Narrator().say
    work = Path(tempfile.mkdtemp(prefix="agentvine-demo-"))
    work.chmod(0o711)  # host git runs as an unprivileged user and must pass through (app/agent/boundary/hostgit.py)
    model = FakeModelAPI(SCRIPT)
    say("starting the embedded GitHub (REST API + git over HTTP) and a scripted model API")
    async with running_fake(work) as github, serve_fake_model_api(model) as model_server:
        issue = _arrange(github)
        service = Service(_settings(github, model, model_server.url, work, secrets.token_hex(16)))
        async with serving(service.make_app()) as url:
            service.settings.public_url = url
            say(f"AgentVine is listening on {url} (the demo repository asks for the full sandbox image, {DEMO_IMAGE})")
            job = _finished_job(service, await _label(github, service, issue, say), say)
            if job is None:
                return 1
            code = _report(github, service, job, model, say)
            if keep_running:
                say("still running (Ctrl-C to stop)")
                await asyncio.Event().wait()
            return code


def sandbox_problem(image: str, command: str) -> str | None:
    """Why `command` cannot run the real sandbox here (no Docker engine, `image` not built), or None."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker-py raises several kinds; each means the same here
        return f"{command} needs a running Docker engine ({exc}). `./dev demo` installs and starts one."
    from app.agent.sandbox.image import image_exists

    try:
        if not image_exists(image, client):
            return f"the sandbox image {image} is not built: run `agentvine sandbox build` (or `./dev demo`)."
    finally:
        client.close()
    return None


def main(keep_running: bool = False) -> int:
    problem = sandbox_problem(DEMO_IMAGE, "agentvine demo")  # the demo runs the real sandbox
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_demo(keep_running))
    except KeyboardInterrupt:
        return 0
