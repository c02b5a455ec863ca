"""Setup time cold vs with the repository's pip cache: the same job twice, in the `full` image, real
Docker, the real CLI and the real egress proxy. The setup installs a wheel of --mb megabytes from a
local PEP 503 index on the host's loopback (tests/support/package_index.py), through the proxy; the
first job's pip fills /cache/pip (the repository's host folder), the second finds the wheel there.
The index is plain HTTP, so the command names it `--trusted-host`: pip caches only HTTPS origins and
trusted hosts (and only answers with an ETag or a max-age, which the local index sends as PyPI does).

Usage: python bench/setup_cache.py [--mb 20] [--rounds 3]

Each round is a fresh AgentVine (a fresh data directory, so an empty cache) running two jobs.
"""

from __future__ import annotations

import argparse
import base64
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.agent.sandbox.recipe import PROFILE_IMAGES  # noqa: E402
from app.fakes.model_api import ScriptedTurn, ToolUse  # noqa: E402
from tests.support.harness import REPO, end_to_end  # noqa: E402
from tests.support.package_index import local_pypi  # noqa: E402


def script(i: int) -> list[ScriptedTurn]:
    write = ToolUse(name="Write", input={"file_path": f"/workspace/change_{i}.py", "content": f"X = {i}\n"})
    return [ScriptedTurn(tool_uses=[write]), ScriptedTurn(text=f"Added change_{i}.py.")]


async def one_round(mb: int) -> tuple[float, float]:
    """(the first job's setup seconds, the second's)."""
    blob = base64.b64encode(os.urandom(mb * 1024 * 1024 * 3 // 4)).decode()  # the wheel's zip keeps ~3/4 of it
    async with local_pypi("agvbig", "1.0", {"agvbig/__init__.py": "X = 1\n", "agvbig/blob.txt": blob}) as index:
        install = (f"NO_PROXY= no_proxy= python3 -m pip install --user --break-system-packages "
                   f"--disable-pip-version-check --trusted-host 127.0.0.1:{index.port} --index-url {index.url}/simple/ agvbig")
        config = f"setup: [{json.dumps(install)}]\negress: {{allow: ['127.0.0.1:{index.port}']}}\n"
        files = {"README.md": "# hello\n", ".github/agentvine.yml": config}
        work = Path(tempfile.mkdtemp(prefix="bench-setup-cache-"))
        times = []
        async with end_to_end(work, PROFILE_IMAGES["full"], script(0) + script(1), files=files,
                              egress_allow=f"127.0.0.1:{index.port}") as (bot, _):
            for i in range(2):
                issue = bot.github.add_issue(REPO, title=f"Change {i}", user="alice")
                answer = await bot.label(issue["number"], "agentvine:bugfix")
                await bot.settle(timeout=600)
                job = bot.job(answer["jobs"][0])
                assert job.outcome is not None and job.outcome.steps and job.outcome.steps[0].ok, \
                    (i, job.reason, job.outcome and [s.output_tail(2000) for s in job.outcome.steps])
                output = job.outcome.steps[0].output_tail(4000)
                assert ("Using cached" in output) == (i == 1), output  # the second job must use the cache
                times.append(job.outcome.steps[0].duration_s)
    return times[0], times[1]


async def run(mb: int, rounds: int) -> dict:
    results = [await one_round(mb) for _ in range(rounds)]
    cold, warm = [r[0] for r in results], [r[1] for r in results]
    return {"wheel_mb": mb, "rounds": rounds, "cold_median_s": round(statistics.median(cold), 2),
            "cached_median_s": round(statistics.median(warm), 2), "cold_s": [round(t, 2) for t in cold],
            "cached_s": [round(t, 2) for t in warm]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.mb, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
