"""A repository names its sandbox image (`sandbox.image`): a team's own development image, with none of
AgentVine's parts, runs the real CLI through AgentVine's runtime; an image that cannot is a clear
message on GitHub (the check run and the tracking comment), and nothing is left running."""

from __future__ import annotations

import json

import pytest

from app.agent.sandbox.layout import RUNTIME_DIR
from app.agent.sandbox.recipe import PROFILE_IMAGES
from app.agent.sandbox.runtime import GLIBC_LOADERS, machine_arch
from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from app.pipeline.present import texts
from tests.support import team_images
from tests.support.harness import REPO, end_to_end, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]

LOOK = "command -v claude; command -v socat || echo no-socat; id -u; git --version; echo team=$TEAM_TOOLCHAIN"


def repository(image: str) -> dict[str, str]:
    return {"README.md": "# hello\n", ".github/agentvine.yml": f"sandbox:\n  image: '{image}'\n"}


async def run_one(bot):
    issue = bot.github.add_issue(REPO, title="Add a greeting", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle(timeout=180)
    job = bot.job(answer["jobs"][0])
    (run,) = bot.github.check_runs_for(REPO)
    tracking = [c for c in bot.github.comments_on(REPO, issue["number"]) if c["user"]["type"] == "Bot"]
    return job, run, tracking


async def test_a_team_image_runs_the_real_cli_through_agentvines_runtime(tmp_path, sandbox_image, team_image,
                                                                         runtime_volume, docker_client):
    script = [
        ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": LOOK})]),
        ScriptedTurn(tool_uses=[ToolUse(name="Write", input={"file_path": "/workspace/greeting.txt",
                                                             "content": "hello from the team image\n"})]),
        ScriptedTurn(text="Added greeting.txt."),
    ]
    async with end_to_end(tmp_path, sandbox_image, script, files=repository(team_image),
                          allowed_images=("agentvine-test-team:*",)) as (bot, model):
        job, run, _ = await run_one(bot)
    assert (job.state, run["conclusion"]) == (JobState.SUCCEEDED, "success"), job.outcome
    assert job.run.image == team_image
    output = json.dumps(model.tool_results()[0])
    assert f"{RUNTIME_DIR}/bin/claude" in output and "no-socat" in output  # AgentVine's CLI, none of the image's
    assert "\\n1000\\n" in output and "git version" in output and "team=1" in output  # the team's own tools and env
    (pull,) = bot.github.pulls
    assert bot.github.repo(REPO).git.git("show", f"{job.branch}:greeting.txt").decode() == "hello from the team image\n"
    assert pull["head"]["ref"] == job.branch
    assert job_containers(docker_client, job) == []


def _unusable(docker_client, sandbox_image, kind: str) -> tuple[str, str]:
    """(the image, what the message must say) for each way an image cannot run the agent."""
    other = "arm64" if machine_arch() == "amd64" else "amd64"
    if kind == "missing":
        return "agentvine-test-team:never-loaded", "is not on the AgentVine host, which never pulls images"
    if kind == "no_shell":
        return team_images.shell_less_image(docker_client), "has no `/bin/sh`"
    if kind == "no_glibc":
        return team_images.busybox_image(docker_client, machine_arch()), f"has no glibc (`{GLIBC_LOADERS[machine_arch()]}`"
    if kind == "no_bash":
        return team_images.team_image(docker_client, sandbox_image, without_bash=True), "has no bash"
    return team_images.foreign_arch_image(docker_client, other), f"is built for `linux/{other}`"


@pytest.mark.parametrize("kind", ["missing", "no_shell", "no_glibc", "no_bash", "platform"])
async def test_an_image_that_cannot_run_the_agent_is_a_message_on_github(tmp_path, sandbox_image, runtime_volume,
                                                                         docker_client, kind):
    image, says = _unusable(docker_client, sandbox_image, kind)
    async with end_to_end(tmp_path, sandbox_image, [ScriptedTurn(text="never asked")], files=repository(image),
                          allowed_images=("agentvine-test-team:*",)) as (bot, model):
        job, run, tracking = await run_one(bot)
    assert (job.state, job.conclusion) == (JobState.FAILED, "failure")
    assert (run["conclusion"], run["output"]["title"]) == ("failure", texts.OUTCOME["image_unusable"])
    assert says in run["output"]["summary"] and f"`{image}`" in run["output"]["summary"]
    assert says in tracking[-1]["body"] and "Nothing ran" in tracking[-1]["body"]
    assert model.requests == [] and bot.github.pulls == []
    assert job_containers(docker_client, job) == []


async def test_an_image_the_operator_does_not_allow_is_a_config_error(tmp_path, sandbox_image, team_image, docker_client):
    async with end_to_end(tmp_path, sandbox_image, [ScriptedTurn(text="never asked")], files=repository(team_image),
                          allowed_images=("registry.example.com/*",)) as (bot, model):
        job, run, comments = await run_one(bot)
    assert (job.state, run["conclusion"]) == (JobState.FAILED, "failure")
    assert run["output"]["title"] == texts.CONFIG_INVALID_TITLE
    assert "nor one of the operator's allowed images (registry.example.com/*; AGENTVINE_ALLOWED_IMAGES)" in comments[-1]["body"]
    assert model.requests == [] and job_containers(docker_client, job) == []


async def test_a_malformed_image_name_is_a_config_error(tmp_path, sandbox_image):
    async with end_to_end(tmp_path, sandbox_image, [ScriptedTurn(text="never asked")],
                          files=repository("Team Image; rm -rf /")) as (bot, model):
        job, run, comments = await run_one(bot)
    assert run["output"]["title"] == texts.CONFIG_INVALID_TITLE and "sandbox.image" in comments[-1]["body"]
    assert model.requests == []


async def test_the_base_profile_by_name(tmp_path, sandbox_image, docker_client):
    script = [ScriptedTurn(tool_uses=[ToolUse(name="Bash", input={"command": "command -v python3 || echo no-python"})]),
              ScriptedTurn(text="Looked.")]
    async with end_to_end(tmp_path, PROFILE_IMAGES["full"], script, files=repository("base")) as (bot, model):
        job, run, _ = await run_one(bot)  # the operator's default is full; the repository asks for base
    assert run["conclusion"] == "neutral" and "no-python" in json.dumps(model.tool_results()[0])
