"""The sandbox's profiles: each tagged by its own recipe, and the full one's toolchains working as the
agent uses them (uid 1000, read-only root, no network), with installs landing in the job's home."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from app.agent.sandbox import recipe
from app.agent.sandbox.layout import PINNED
from app.agent.sandbox.recipe import DEFAULT_IMAGE, PROFILE_IMAGES, PROFILES, image_tag, profile_of
from app.domain.config import SANDBOX_PROFILES
from app.settings import Settings

from .test_container import Collector, spec_for


def test_each_profile_has_its_own_tag_and_full_is_the_default():
    assert tuple(PROFILES) == SANDBOX_PROFILES  # the config's names are the recipe's
    assert re.fullmatch(rf"agentvine-sandbox:{re.escape(PINNED)}-[0-9a-f]{{10}}", PROFILE_IMAGES["base"])
    assert re.fullmatch(rf"agentvine-sandbox:{re.escape(PINNED)}-full-[0-9a-f]{{10}}", PROFILE_IMAGES["full"])
    assert DEFAULT_IMAGE == PROFILE_IMAGES["full"] == Settings().sandbox_image
    assert Settings(sandbox_image="base").sandbox_image == PROFILE_IMAGES["base"]
    assert profile_of(PROFILE_IMAGES["full"]) == "full" and profile_of("team/dev:1") is None
    assert set(PROFILES["full"].packages) >= {"python3", "python3-pip", "python3-venv", "nodejs", "npm",
                                              "build-essential", "ripgrep", "jq", "curl", "unzip"}


def test_a_profile_tag_follows_its_own_recipe(monkeypatch):
    before = dict(PROFILE_IMAGES)
    full = PROFILES["full"]
    monkeypatch.setitem(PROFILES, "full", type(full)("full", full.packages + ("zstd",), full.setup, full.env, full.smoke))
    assert image_tag(PINNED, "full") != before["full"]
    assert image_tag(PINNED, "base") == before["base"]  # the other profile's image stays valid
    monkeypatch.setattr(recipe, "ENTRYPOINT_SCRIPT", recipe.ENTRYPOINT_SCRIPT + "\n# changed\n")
    assert image_tag(PINNED, "base") != before["base"]


def test_the_build_command_names_each_profile():
    run = [sys.executable, "-m", "app", "sandbox", "build"]
    both = subprocess.run([*run, "--print-tag"], capture_output=True, text=True, timeout=60)
    assert both.stdout.split() == [PROFILE_IMAGES["base"], PROFILE_IMAGES["full"]]
    one = subprocess.run([*run, "--profile", "full", "--print-tag"], capture_output=True, text=True, timeout=60)
    assert one.stdout.split() == [PROFILE_IMAGES["full"]]
    refused = subprocess.run([*run, "--tag", "x:y"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "give one --profile" in refused.stderr
    unknown = subprocess.run([*run, "--profile", "huge"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "hello-agent"
version = "1.0"
[project.scripts]
hello-agent = "hello_agent:main"
"""
TOOLCHAINS = r"""
set -e
cd /workspace
python3 -m venv /tmp/venv && /tmp/venv/bin/python -c 'import sys; print("venv", sys.prefix)'
pip install -q --no-index --no-build-isolation ./py 2>&1 | tail -n 2
hello-agent
npm install -g --offline --no-audit --no-fund ./js >/dev/null 2>&1
hello-node
printf '#include <stdio.h>\nint main(void){puts("compiled");return 0;}\n' > /tmp/c.c
printf 'all:\n\tgcc -o /tmp/c /tmp/c.c\n' > /tmp/Makefile && make -s -C /tmp && /tmp/c
printf '{"a":[1,2]}' | jq -c '.a'
rg --version | head -n 1
curl --version | head -n 1 | cut -d' ' -f1
unzip -v | head -n 1 | cut -d' ' -f1
find / -xdev -perm /6000 -type f | wc -l
"""


@pytest.mark.docker
async def test_the_full_profile_runs_a_repositorys_toolchains_as_the_agent(full_image, job_id, job_dirs):
    ws, _home = job_dirs
    (ws / "py").mkdir()
    (ws / "py" / "pyproject.toml").write_text(PYPROJECT)
    (ws / "py" / "hello_agent.py").write_text("def main():\n    print('pip user install works')\n")
    (ws / "js").mkdir()
    (ws / "js" / "package.json").write_text('{"name": "hello-node", "version": "1.0.0", "bin": {"hello-node": "cli.js"}}')
    (ws / "js" / "cli.js").write_text("#!/usr/bin/env node\nconsole.log('npm global install works', process.version)\n")
    out = Collector()
    result = await run_sandbox_full(full_image, job_id, job_dirs, out)
    assert result.exit_code == 0, result.stderr_tail + "\n".join(out.lines)
    text = "\n".join(out.lines)
    assert "venv /tmp/venv" in text
    assert "pip user install works" in text  # PEP 668's marker is gone: pip installs into ~/.local
    assert "npm global install works v18." in text  # npm's prefix is ~/.local too
    assert "compiled" in text and "[1,2]" in text
    assert out.lines[-4].startswith("ripgrep ") and out.lines[-3:] == ["curl", "UnZip", "0"]  # no setuid programs


async def run_sandbox_full(image, job_id, job_dirs, out):
    from app.agent.sandbox import run_sandbox

    return await run_sandbox(spec_for(image, job_id, job_dirs, ["bash", "-c", TOOLCHAINS], timeout_s=120), out)


@pytest.mark.docker
def test_the_full_image_says_what_it_is(full_image, docker_client):
    labels = docker_client.images.get(full_image).attrs["Config"]["Labels"]
    assert labels["agentvine.profile"] == "full" and labels["agentvine.sandbox"] == "1"
    assert labels["agentvine.recipe"] == recipe.recipe_hash("full")
