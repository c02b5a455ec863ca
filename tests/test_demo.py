"""`agentvine demo` end to end on the real sandbox: the demo repository asks for the full image, and
the agent's test runs are python3's own output from inside it (failing before the fix, passing after)."""

from __future__ import annotations

import sys

import pytest

from app import demo

pytestmark = [pytest.mark.docker, pytest.mark.claude]


async def test_the_demo_runs_the_repositorys_tests_with_python3_in_the_full_image(full_image, docker_client, capsys):
    assert demo.DEMO_IMAGE == full_image
    sandbox_python = docker_client.containers.run(full_image, ["python3", "--version"], remove=True,
                                                  network_mode="none").decode().strip()
    assert sandbox_python != f"Python {sys.version.split()[0]}"  # so the output below cannot be the host's

    assert await demo.run_demo(keep_running=False) == 0
    out = capsys.readouterr().out
    before, after = out.split("which printed:")[1:3]
    assert f"| {sandbox_python}" in before and "FAILED (failures=1)" in before and "test_tabs" in before
    assert f"| {sandbox_python}" in after and "Ran 2 tests" in after and "\n  | OK" in after
    # The pull request says so in AgentVine's own words (its verify step), not only in the agent's.
    assert "**Verified:** `python3 -m unittest` passed" in out
    files = out.split("### Files changed")[1].split("###")[0]
    assert files.split() == ["-", "`wordcount.py`"]  # no __pycache__ in the change
    assert "succeeded (success) — Opened #2" in out
