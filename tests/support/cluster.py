"""AgentVine scaled out, as real processes: `agentvine serve --role web` instances and `--role worker`
instances on one PostgreSQL, each worker on a Docker engine of its own (a "machine"), against the
GitHub fake and the model API fake running in the test process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from app.fakes.github.testing import free_port
from app.fakes.github.state import FakeGitHub
from app.fakes.github.webhooks import delivery_headers
from tests.support import payloads
from tests.support.env import SECRET, as_bytes, reachable_by_host_git
from tests.support.harness import INSTALLATION, REPO

READY_S = 60.0



@dataclass
class Instance:
    name: str
    role: str
    process: subprocess.Popen
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.process.send_signal(sig)
        if sig == signal.SIGKILL:
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    root: Path
    github: FakeGitHub
    database_url: str
    model_url: str | None  # None, with model_key None: no model key, every run ends at once
    model_key: str | None
    image: str
    settings: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    events: int = 0

    def _env(self, name: str, **extra: str) -> dict[str, str]:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        data = reachable_by_host_git(self.root / name)
        env = dict(os.environ)
        env.update({
            "AGENTVINE_APP_ID": str(self.github.app_id), "AGENTVINE_PRIVATE_KEY": self.github.private_key_pem,
            "AGENTVINE_WEBHOOK_SECRET": SECRET, "AGENTVINE_GITHUB_API_URL": self.github.api_url,
            "AGENTVINE_GIT_URL": self.github.url, "AGENTVINE_DATA_DIR": str(data / "agentvine"),
            "AGENTVINE_DATABASE_URL": self.database_url, "AGENTVINE_SANDBOX_IMAGE": self.image,
            "AGENTVINE_PROGRESS_INTERVAL": "0.5", "PYTHONUNBUFFERED": "1", **self.settings, **extra,
        })
        if self.model_key is not None:
            env.update({"AGENTVINE_MODEL_API_URL": self.model_url or "", "ANTHROPIC_API_KEY": self.model_key})
        else:
            env.pop("ANTHROPIC_API_KEY", None)
        return env

    def _spawn(self, name: str, role: str, env: dict[str, str], *args: str) -> tuple[subprocess.Popen, Path]:
        log = self.root / f"{name}.log"
        with open(log, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "app", "serve", "--role", role, *args], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True), log

    async def start_web(self, name: str) -> Instance:
        port = free_port()
        process, log = self._spawn(name, "web", self._env(name), "--host", "127.0.0.1", "--port", str(port))
        instance = Instance(name, "web", process, log, port)
        self.instances.append(instance)
        deadline = time.monotonic() + READY_S
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(instance.url + "/health") as answer:
                        if answer.status == 200:
                            return instance
                except aiohttp.ClientError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"web instance {name} did not start:\n{instance.output()[-3000:]}")
                await asyncio.sleep(0.2)

    def start_worker(self, name: str, docker_host: str | None = None, github_host: str | None = None) -> Instance:
        """A worker on machine `name` (its data directory and engine); another with the same name is that
        machine's worker started again. `github_host`: the loopback address it reaches the fake at
        (running_fake's `also_on`), which tells its requests apart in `github.writes`."""
        extra = {"AGENTVINE_WORKER_NAME": name}
        if docker_host:
            extra["DOCKER_HOST"] = docker_host
        if github_host:
            extra["AGENTVINE_GITHUB_API_URL"] = self.github.api_url.replace("127.0.0.1", github_host, 1)
            extra["AGENTVINE_GIT_URL"] = self.github.url.replace("127.0.0.1", github_host, 1)
        process, log = self._spawn(name, "worker", self._env(name, **extra))
        instance = Instance(name, "worker", process, log)
        self.instances.append(instance)
        return instance

    async def deliver(self, web: Instance, number: int, *, delivery_id: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Label issue `number` (or resend `body` as it was) through `web`; the status and the body sent."""
        if body is None:
            issue = self.github.issue(REPO, number)
            repo = self.github.render_repository(self.github.repo(REPO))
            payload = payloads.labeled_issue(label="agentvine:bugfix", issue=issue, repo=repo,
                                             installation_id=INSTALLATION, sender="alice")
            self.events += 1
            payload["issue"]["updated_at"] = f"2026-12-01T01:{self.events // 60:02d}:{self.events % 60:02d}Z"
            body = as_bytes(payload)
        async with aiohttp.ClientSession() as http:
            async with http.post(web.url + "/webhooks", data=body,
                                 headers=delivery_headers("issues", body, SECRET, delivery_id)) as answer:
                return answer.status, body

    def stop(self) -> None:
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGCONT)
                instance.process.terminate()
        for instance in self.instances:
            try:
                instance.process.wait(30)
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait(10)


async def until(condition: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(interval)
