"""What `agentvine doctor` checks against in tests: the GitHub fake with the App installed, the model
API fake, and the settings (as environment variables) of an installation where every check passes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from app.fakes.github.state import FakeGitHub
from app.fakes.github.testing import running_fake
from app.fakes.model_api import FakeModelAPI, serve_fake_model_api
from tests.support.env import SECRET, reachable_by_host_git
from tests.support.harness import arrange_github

MODEL_KEY = "sk-ant-doctor-test-key-5b1d"


@dataclass
class DoctorWorld:
    github: FakeGitHub
    model: FakeModelAPI
    env: dict[str, str]  # the settings under which every check passes


@contextlib.asynccontextmanager
async def doctor_world(tmp_path: Path, sandbox_image: str) -> AsyncIterator[DoctorWorld]:
    async with running_fake(tmp_path) as github, \
            serve_fake_model_api(model := FakeModelAPI(api_key=MODEL_KEY)) as served:
        arrange_github(github)
        key = tmp_path / "app.pem"
        key.write_text(github.private_key_pem)
        key.chmod(0o600)
        env = {
            "AGENTVINE_APP_ID": str(github.app_id), "AGENTVINE_PRIVATE_KEY_PATH": str(key),
            "AGENTVINE_WEBHOOK_SECRET": SECRET, "AGENTVINE_GITHUB_API_URL": github.url,
            "AGENTVINE_GIT_URL": github.url, "AGENTVINE_MODEL_API_URL": served.url, "ANTHROPIC_API_KEY": MODEL_KEY,
            "AGENTVINE_DATA_DIR": str(reachable_by_host_git(tmp_path) / "data"),
            "AGENTVINE_SANDBOX_IMAGE": sandbox_image,
        }
        yield DoctorWorld(github, model, env)
