"""What people are told when the job's image cannot run the agent: the pipeline's own words, with
whatever the image or the repository's config said kept inside code spans."""

from __future__ import annotations

from types import SimpleNamespace

from app.agent.sandbox import SandboxResult
from app.agent.sandbox.container import ImageUnusable
from app.agent.sandbox.plan import ImagePlan
from app.agent.sandbox.runtime import EXIT_NO_GLIBC
from app.domain.job import RunSettings
from app.pipeline.present import texts
from app.pipeline.sandbox_image import image_outcome, runtime_failure


def context():
    run = RunSettings(prompt_template="x", max_turns=3, timeout_minutes=1, max_cost_usd=1, allowed_tools=[],
                      allowed_paths=[], allow_workflow_changes=False, trigger_permission="write", memory="1g",
                      cpus=1, pids=64, image="team/dev:1")
    return SimpleNamespace(job=SimpleNamespace(worker="bugfix", run=run), service_config=SimpleNamespace(command_prefix="/agentvine"))


def test_what_the_image_says_stays_inside_code_spans():
    hostile = "linux/`@everyone` <img src=x> #1"
    outcome = image_outcome(context(), ImageUnusable("platform", image="team/dev:1", platform=hostile, want="linux/amd64"),
                            "team/dev:1")
    assert outcome.title == texts.OUTCOME["image_unusable"] and outcome.conclusion == "failure"
    assert "`team/dev:1` is built for ``" in outcome.detail and "`linux/amd64`" in outcome.detail
    assert "`` linux/`@\u200beveryone` <img src=x> #\u200b1 ``" in outcome.detail  # one span; no mention, no link
    assert outcome.detail.endswith("then `/agentvine retry`.")


def test_a_missing_profile_image_says_to_build_it():
    outcome = image_outcome(context(), ImageUnusable("missing", image="agentvine-sandbox:x", profile="full"), "x")
    assert "The `full` profile's image `agentvine-sandbox:x` is not built" in outcome.detail
    assert "agentvine sandbox build" in outcome.detail


def test_only_the_runtimes_own_exit_before_any_output_is_read_as_an_image_problem():
    plan, exited = ImagePlan("team/dev:1", "agentvine-runtime-x"), SandboxResult(EXIT_NO_GLIBC, False, False, 0.1)
    assert "has no glibc" in runtime_failure(context(), plan, exited, lines=0).detail
    assert runtime_failure(context(), plan, exited, lines=3) is None  # the agent ran: its exit is its own
    assert runtime_failure(context(), ImagePlan("agentvine-sandbox:x"), exited, lines=0) is None  # not the runtime
    assert runtime_failure(context(), plan, SandboxResult(1, False, False, 0.1), lines=0) is None
