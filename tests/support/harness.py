"""An AgentVine service wired to a running GitHub fake, and deliveries sent to it as GitHub would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.agent.sandbox.layout import LABEL_JOB
from app.domain.job import Job
from app.fakes.github.state import FakeGitHub
from app.fakes.github.testing import running_fake
from app.fakes.model_api import FakeModelAPI, ScriptedTurn, serve_fake_model_api
from app.assembly import Service
from tests.support import payloads
from app.fakes.github.webhooks import delivery_headers
from tests.support.env import SECRET, as_bytes, make_settings

REPO = "octo-org/hello"
INSTALLATION = 1001


def arrange_github(fake: FakeGitHub, *, files: dict[str, str] | None = None) -> None:
    """One installation, one repository, and people with known roles."""
    fake.add_installation(INSTALLATION, "octo-org", account_type="Organization")
    fake.add_repo(REPO, installation_id=INSTALLATION, files=files or {"README.md": "# hello\n", "hello.py": "print('hi')\n"})
    for login, role in {"alice": "write", "mona": "maintain", "bob": "read"}.items():
        fake.add_user(login)
        fake.set_permission(REPO, login, role)


@dataclass
class Harness:
    github: FakeGitHub
    service: Service
    client: TestClient
    events: int = 0  # label events delivered so far

    @property
    def repo(self) -> dict[str, Any]:
        return self.github.render_repository(self.github.repo(REPO))

    async def deliver(self, event: str, payload: dict[str, Any], delivery_id: str | None = None) -> web.Response:
        body = as_bytes(payload)
        return await self.client.post("/webhooks", data=body, headers=delivery_headers(event, body, SECRET, delivery_id))

    async def label(self, number: int, label: str, *, sender: str = "alice", sender_type: str = "User",
                    delivery_id: str | None = None) -> dict[str, Any]:
        issue = self.github.issue(REPO, number)
        payload = payloads.labeled_issue(label=label, issue=issue, repo=self.repo, installation_id=INSTALLATION,
                                         sender=sender, sender_type=sender_type)
        # Each labeling is a new event, and GitHub's body says when: the same bytes again are a replay.
        self.events += 1
        payload["issue"]["updated_at"] = f"2026-12-01T00:{self.events // 60:02d}:{self.events % 60:02d}Z"
        response = await self.deliver("issues", payload, delivery_id)
        assert response.status in (200, 202), await response.text()
        return await self.outcome(response)

    async def comment(self, number: int, body: str, *, sender: str = "alice") -> tuple[dict[str, Any], dict[str, Any]]:
        comment = self.github.add_comment(REPO, number, body=body, user=sender)
        payload = payloads.issue_comment(body=body, issue=self.github.issue(REPO, number), repo=self.repo,
                                         installation_id=INSTALLATION, sender=sender)
        payload["comment"] = {**payload["comment"], "id": comment["id"]}
        response = await self.deliver("issue_comment", payload)
        assert response.status == 202, await response.text()
        return comment, await self.outcome(response)

    async def outcome(self, response: web.Response) -> dict[str, Any]:
        """The 202's answer, with what the worker made of the delivery once it took it from the
        inbox: its outcome and the ids of the jobs it started."""
        answer = await response.json()
        await self.service.worker.importer.import_new()
        delivery = self.service.store.get_delivery(answer["delivery"])
        return {**answer, "outcome": delivery.outcome, "jobs": self.service.store.delivery_jobs(delivery.id)}

    async def press(self, job_id: str, identifier: str | None, *, sender: str = "alice") -> None:
        """Click a button on the job's check run (None: Re-run in the Checks tab)."""
        job = self.job(job_id)
        event, payload = payloads.check_run_button(
            external_id=f"agentvine:{job.id}", check_run_id=job.check_run_id, identifier=identifier,
            repo=self.repo, installation_id=INSTALLATION, sender=sender)
        response = await self.deliver(event, payload)
        assert response.status == 202, await response.text()

    async def ci_finished(self, sha: str, *, app: str = "github-actions", run: dict[str, Any] | None = None,
                          sender: str = "agentvine[bot]", suite: dict[str, Any] | None = None) -> dict[str, Any]:
        """CI finished on `sha`: `check_suite.completed` for App `app`'s suite there as the fake has it now
        (or as `suite` had it), or `check_run.completed` for `run` (the fake's, as it is now). The sender
        is the bot that pushed, as on GitHub."""
        suite = suite or self.github.check_suite(REPO, sha, app)
        target = {"repo": self.repo, "installation_id": INSTALLATION, "sender": sender,
                  "sender_type": "Bot" if sender.endswith("[bot]") else "User"}
        if run is None:
            event, payload = "check_suite", payloads.check_suite_completed(suite, **target)
        else:
            run = next(r for r in self.github.check_runs if r["id"] == run["id"])
            event, payload = "check_run", payloads.check_run_completed(run, suite, **target)
        self.events += 1  # a suite that completes again sends a new body (a redelivery sends the same one)
        payload[event]["updated_at"] = f"2026-12-01T01:{self.events // 60:02d}:{self.events % 60:02d}Z"
        response = await self.deliver(event, payload)
        assert response.status == 202, await response.text()
        return await self.outcome(response)

    async def settle(self, timeout: float = 30) -> None:
        await self.service.dispatcher.wait_idle(timeout)

    def job(self, job_id: str):
        return self.service.store.get_job(job_id)


@contextlib.asynccontextmanager
async def running_agentvine(fake: FakeGitHub, data_root: Path, **settings: Any) -> AsyncIterator[Harness]:
    service = Service(make_settings(data_root, private_key=fake.private_key_pem, github_url=fake.url,
                                    api_url=fake.api_url, app_id=fake.app_id, **settings))
    client = TestClient(TestServer(service.make_app()))
    await client.start_server()
    try:
        yield Harness(fake, service, client)
    finally:
        await client.close()


def job_containers(docker_client, job: Job | str) -> list:
    """The job's sandbox containers, running or not (none may be left when a job ends)."""
    job_id = job if isinstance(job, str) else job.id
    return docker_client.containers.list(all=True, ignore_removed=True, filters={"label": f"{LABEL_JOB}={job_id}"})


@contextlib.asynccontextmanager
async def end_to_end(tmp_path, image: str, script: list[ScriptedTurn], *, files: dict[str, str] | None = None,
                     api_prefix: str = "", **settings) -> AsyncIterator[tuple[Harness, FakeModelAPI]]:
    """AgentVine with the GitHub fake (a GitHub Enterprise Server with `api_prefix="/api/v3"`), the
    scripted model API, real Docker and the real CLI in `image`."""
    model = FakeModelAPI(script)
    async with running_fake(tmp_path, api_prefix=api_prefix) as github, serve_fake_model_api(model) as running_model:
        arrange_github(github, files=files)
        async with running_agentvine(
            github, tmp_path, sandbox_image=image, model_api_url=running_model.url,
            ANTHROPIC_API_KEY=model.api_key, progress_interval=0.3, **settings,
        ) as bot:
            yield bot, model
        github.assert_no_violations()
