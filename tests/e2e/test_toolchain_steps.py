"""Issue 9 as a whole, end to end: real Docker, the real CLI, the real egress proxy, the `full` image. A
Python (and a Node.js) repository whose `setup` installs a package from a local index the test serves on
the host's loopback (allowed by the operator and the repository), whose `verify` runs its tests with that
package; the scripted agent's first fix is wrong, verify fails, the resumed session fixes it, verify
passes and the pull request says so. During setup a host not on the list gets the proxy's 403 (named in
the check run) and a direct connection to the index, past the proxy, finds no route.

NO_PROXY covers all of loopback in the sandbox (its own servers stay direct), so the setup commands
empty it to send 127.0.0.1 through the proxy, as a repository would with a non-loopback index."""

from __future__ import annotations

import json

import pytest

from app.domain.job import JobState
from app.fakes.model_api import ScriptedTurn, ToolUse
from tests.support.harness import REPO, end_to_end
from tests.support.package_index import local_npm, local_pypi

pytestmark = [pytest.mark.docker, pytest.mark.claude]

BLOCKED = "blocked.example.org"
THROUGH_PROXY = "NO_PROXY= no_proxy="  # the index is on the host's 127.0.0.1: through the proxy, not direct


def probes(port: int) -> str:
    """A blocked host through the proxy (curl prints the 403), then the index directly (no route)."""
    return (f"curl -sS https://{BLOCKED}/ 2>&1; echo \"curl exit $?\"; "
            f"if timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo 'direct: open'; "
            "else echo 'direct: refused'; fi")


def write(path: str, content: str, text: str) -> ScriptedTurn:
    """The agent rewrites a file of the repository with its Bash tool (Write wants a Read first)."""
    command = f"cat > {path} <<'AGV_EOF'\n{content}AGV_EOF"
    return ScriptedTurn(text=text, tool_uses=[ToolUse(name="Bash", input={"command": command, "description": "fix"})])


async def run_job(bot):
    issue = bot.github.add_issue(REPO, title="add() is wrong", user="alice")
    answer = await bot.label(issue["number"], "agentvine:bugfix")
    await bot.settle(timeout=420)
    job = bot.job(answer["jobs"][0])
    (run,) = bot.github.check_runs_for(REPO)
    return job, run


def assert_verified(job, run, pulls, index, command: str) -> None:
    assert (job.state, job.conclusion) == (JobState.SUCCEEDED, "success"), job.reason
    phases = [(s.phase, s.attempt, s.exit_code) for s in job.outcome.steps]
    assert phases == [("setup", 1, 0), ("setup", 1, 0), ("verify", 1, 1), ("verify", 2, 0)], phases
    probe = job.outcome.steps[1].output_tail(4000)
    assert "403" in probe and "direct: refused" in probe, probe
    (pull,) = pulls
    assert f"**Verified:** `{command}` passed (after 2 attempts)." in pull["body"]
    assert "Verify failed" not in pull["body"]  # (a draft or not by the level, as without verify)
    summary = run["output"]["summary"]
    assert f"`127.0.0.1:{index.port}`" in summary and f"`{BLOCKED}:443`" in summary, summary
    assert f"`{BLOCKED}:443`" in pull["body"]  # blocked hosts are named in the pull request too
    assert job.egress is not None and {h.target for h in job.egress.blocked} == {f"{BLOCKED}:443"}
    assert any(h.target == f"127.0.0.1:{index.port}" and h.bytes_down > 0 for h in job.egress.allowed)


PY_TEST = ("import unittest\n\nimport agvhelper\nimport calc\n\n\nclass AddTest(unittest.TestCase):\n"
           "    def test_add(self):\n        self.assertEqual(calc.add(2, 3), agvhelper.FIVE)\n")


def steps_config(install: str, port: int, verify: str) -> str:
    """Setup installs from the local server (and probes egress), verify runs the tests; egress names the server."""
    return (f"setup:\n  - {json.dumps(install)}\n  - {json.dumps(probes(port))}\nverify: [{json.dumps(verify)}]\n"
            f"egress: {{allow: ['127.0.0.1:{port}']}}\n")


def wrong_then_right(path: str, wrong: str, right: str) -> list[ScriptedTurn]:
    """The agent's first fix fails verify; the resumed session's second passes it."""
    return [write(path, wrong, "Fixing add."), ScriptedTurn(text="add() multiplies now."),
            write(path, right, "The test wants 5."), ScriptedTurn(text="add() adds now.")]


async def test_python_setup_from_a_local_index_verify_fails_then_the_resumed_fix_passes(tmp_path, full_image):
    async with local_pypi("agvhelper", "1.0", {"agvhelper/__init__.py": "FIVE = 5\n"}) as index:
        install = (f"{THROUGH_PROXY} python3 -m pip install --user --break-system-packages "
                   f"--disable-pip-version-check --index-url {index.url}/simple/ agvhelper")
        config = steps_config(install, index.port, "python3 -m unittest -v")
        files = {"README.md": "# calc\n", "calc.py": "def add(a, b):\n    return a - b\n",
                 "test_calc.py": PY_TEST, ".github/agentvine.yml": config}
        script = wrong_then_right("/workspace/calc.py", "def add(a, b):\n    return a * b\n",
                                  "def add(a, b):\n    return a + b\n")
        async with end_to_end(tmp_path, full_image, script, files=files,
                              egress_allow=f"127.0.0.1:{index.port}") as (bot, model):
            job, run = await run_job(bot)
            pulls = bot.github.pulls
            assert bot.github.read_file(REPO, job.branch, "calc.py") == "def add(a, b):\n    return a + b\n"
        assert "/files/agvhelper-1.0-py3-none-any.whl" in index.requests
    verify_1 = job.outcome.steps[2].output_tail(4000)
    assert "AssertionError: 6 != 5" in verify_1, verify_1  # the package's value, imported in the test
    assert "python3 -m unittest -v" in str(model.main_requests[2]["messages"])  # the resumed session was told
    assert_verified(job, run, pulls, index, "python3 -m unittest -v")


JS_TEST = ("const assert = require('assert');\nconst { FIVE } = require('agv-five');\n"
           "assert.strictEqual(require('./calc').add(2, 3), FIVE);\nconsole.log('ok');\n")


async def test_node_setup_from_a_local_registry_verify_fails_then_the_resumed_fix_passes(tmp_path, full_image):
    async with local_npm("agv-five", "1.0.0", {"index.js": "exports.FIVE = 5;\n"}) as registry:
        install = f"{THROUGH_PROXY} npm install --no-audit --no-fund --registry {registry.url}/ agv-five"
        config = steps_config(install, registry.port, "node test.js")
        files = {"README.md": "# calc\n", "calc.js": "exports.add = (a, b) => a - b;\n", "test.js": JS_TEST,
                 ".gitignore": "node_modules/\npackage.json\npackage-lock.json\n", ".github/agentvine.yml": config}
        script = wrong_then_right("/workspace/calc.js", "exports.add = (a, b) => a * b;\n",
                                  "exports.add = (a, b) => a + b;\n")
        async with end_to_end(tmp_path, full_image, script, files=files,
                              egress_allow=f"127.0.0.1:{registry.port}") as (bot, _):
            job, run = await run_job(bot)
            pulls = bot.github.pulls
            assert bot.github.read_file(REPO, job.branch, "calc.js") == "exports.add = (a, b) => a + b;\n"
        assert "/agv-five/-/agv-five-1.0.0.tgz" in registry.requests
    assert "6 !== 5" in job.outcome.steps[2].output_tail(4000) or "Expected values to be strictly equal" in \
        job.outcome.steps[2].output_tail(4000)
    assert_verified(job, run, pulls, registry, "node test.js")
