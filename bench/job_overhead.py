"""Bot overhead per job, and GitHub API calls per job.

Overhead = the job's wall time, from the delivery to its final report, minus the time Claude
Code spent waiting on the model API (its own `duration_api_ms`): clone, container, the CLI's
start, commit, push, pull request, and every report. Real Docker, the real Claude Code CLI,
the GitHub fake (git over smart HTTP) and a scripted model API that answers at once.

Usage: python bench/job_overhead.py [--jobs 7] [--image full|base|team|REFERENCE]

--image is the repository's `sandbox.image`: a profile (the settings' default is `full`), `team`
(a team's image without Claude Code, run with AgentVine's runtime volume: tests/support/team_images.py,
made from the base image if missing), or any image reference (then allowed for the run).

`--egress off` runs the jobs without the egress proxy (no channel, no forwarder in the sandbox):
the A/B for what the proxy adds to every job.

`--steps true` gives the repository `setup: ['true']` and `verify: ['true']`: what a setup and a
verify phase cost a job when their commands cost nothing (a container each); `none` has neither.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.assembly import Service  # noqa: E402
from app.fakes.github.testing import deliver, running_fake, serving  # noqa: E402
from app.fakes.model_api import FakeModelAPI, ScriptedTurn, ToolUse, serve_fake_model_api  # noqa: E402
from app.settings import Settings  # noqa: E402

REPO = "octo-org/hello"
SECRET = "bench-secret"


def script(i: int) -> list[ScriptedTurn]:
    return [
        ScriptedTurn(tool_uses=[ToolUse(name="Write", input={"file_path": f"/workspace/change_{i}.py", "content": f"X = {i}\n"})]),
        ScriptedTurn(text=f"Added change_{i}.py."),
    ]


def repository_image(image: str) -> tuple[str, tuple[str, ...]]:
    """(the repository's `sandbox.image`, the images the operator allows for it)."""
    if image in ("base", "full"):
        return image, ()
    if image == "team":
        import docker

        from app.agent.sandbox.recipe import PROFILE_IMAGES
        from tests.support.team_images import team_image

        image = team_image(docker.from_env(timeout=600), PROFILE_IMAGES["base"])
    return image, (image,)


STEPS = {"none": "", "true": "setup: ['true']\nverify: ['true']\n"}


async def run(jobs: int, image: str = "full", egress: bool = True, steps: str = "none") -> dict:
    named, allowed = repository_image(image)
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    model = FakeModelAPI([turn for i in range(jobs + 1) for turn in script(i)])
    rows = []
    async with running_fake(work) as github, serve_fake_model_api(model) as model_server:
        installation = github.add_installation(1001, "octo-org", account_type="Organization")
        github.add_repo(REPO, installation_id=installation["id"], files={
            "README.md": "# hello\n", "hello.py": "print('hi')\n", ".github/agentvine.yml": f"sandbox: {{image: '{named}'}}\n" + STEPS[steps]})
        github.add_user("alice")
        github.set_permission(REPO, "alice", "write")
        label = github.ensure_label(github.repo(REPO), "agentvine:feature")
        work.chmod(0o711)  # host git runs as an unprivileged user and must pass through
        service = Service(Settings(
            app_id=github.app_id, private_key=github.private_key_pem, webhook_secret=SECRET,
            github_api_url=github.url, git_url=github.url, data_dir=work / "agentvine",
            model_api_url=model_server.url, ANTHROPIC_API_KEY=model.api_key, allowed_images=allowed))
        async with serving(service.make_app()) as url:
            if not egress:
                await service.worker.run_deps.egress.close()
                service.worker.run_deps.egress = None
            for i in range(jobs + 1):  # the first one warms up caches (image layers, page cache)
                issue = github.add_issue(REPO, title=f"Change {i}", user="alice")
                issue["labels"].append(label)
                calls_before = len(github.calls)
                payload = github.webhook("issues", "labeled", repo=REPO, sender="alice", issue=issue, label=label)
                status, answer = await deliver(f"{url}/webhooks", "issues", payload, SECRET)
                assert status == 202, answer
                await service.dispatcher.wait_idle(timeout=300)
                job = service.store.get_job(service.store.delivery_jobs(answer["delivery"])[0])
                assert job.outcome and job.outcome.conclusion == "success", (job.state, job.reason, job.outcome and job.outcome.detail)
                finished = next(e.at for e in service.store.events(job.id) if e.kind == "finished")
                total = finished - job.created_at
                model_s = job.outcome.figures.model_s or 0.0
                calls = github.calls[calls_before:]
                rows.append({
                    "total_s": total, "model_s": model_s, "overhead_s": total - model_s,
                    "api_calls": len(calls),
                    "by_operation": Counter(c.operation_id for c in calls),
                })
    measured = rows[1:]
    overhead = [r["overhead_s"] for r in measured]
    return {
        "image": named,
        "steps": steps,
        "jobs": len(measured),
        "overhead_median_s": round(statistics.median(overhead), 2),
        "overhead_max_s": round(max(overhead), 2),
        "total_median_s": round(statistics.median(r["total_s"] for r in measured), 2),
        "model_median_s": round(statistics.median(r["model_s"] for r in measured), 2),
        "api_calls_per_job": sorted({r["api_calls"] for r in measured}),
        "calls_by_operation": dict(measured[-1]["by_operation"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=7)
    parser.add_argument("--image", default="full", help="the repository's sandbox.image: base, full, team, or a reference")
    parser.add_argument("--egress", choices=("on", "off"), default="on")
    parser.add_argument("--steps", choices=tuple(STEPS), default="none")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.jobs, args.image, args.egress == "on", args.steps)), indent=2))


if __name__ == "__main__":
    main()
