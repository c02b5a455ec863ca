"""Routing of GitHub's real example payloads into intents (no I/O)."""

import json

import pytest
from gidgethub import sansio

from app.domain.intents import JobCommand, StartJob
from app.intake.routing import RouteContext, route
from tests.support import payloads
from tests.support.env import all_example_payloads


def ctx() -> RouteContext:
    return RouteContext(command_prefix="/agentvine", label_prefix="agentvine:")


async def intents_for(event: str, payload: dict) -> list:
    return await route(sansio.Event(payload, event=event, delivery_id="d"), ctx())


@pytest.mark.parametrize(("event", "path"), all_example_payloads(), ids=lambda v: getattr(v, "name", v))
async def test_every_example_payload_routes_without_error(event, path):
    payload = json.loads(path.read_text())
    intents = await intents_for(event, payload)
    if (event, path.name) in {("installation", "deleted.payload.json"), ("installation_repositories", "removed.payload.json")}:
        assert intents and {i.name for i in intents} == {"remove_installation"}
    elif payload.get("installation") and (event, payload.get("action")) == ("issue_comment", "created"):
        # A plain comment may answer a question: the worker decides (no job waits on these).
        assert [i.name for i in intents] == ["answer"]
    elif payload.get("installation") and (event, payload.get("action")) == ("pull_request_review_comment", "created"):
        assert [i.name for i in intents] == ["review_comment"]
    elif payload.get("installation") and (event, payload.get("action")) == ("pull_request", "synchronize"):
        # A push may ask for a review of what is new: admission decides, with the repository's config.
        assert [(i.trigger.kind, i.trigger.worker) for i in intents] == [("push", "review")]
    else:
        # None of GitHub's examples carries one of our labels or commands: nothing to do.
        assert intents == []


async def test_our_label_on_an_issue_starts_a_job():
    payload = payloads.labeled_issue(label="agentvine:bugfix", installation_id=7)
    (intent,) = await intents_for("issues", payload)
    assert isinstance(intent, StartJob)
    assert intent.trigger.label == "agentvine:bugfix"
    assert intent.repo == "Codertocat/Hello-World" and intent.issue_number == 1
    assert intent.requester == "Codertocat" and intent.installation_id == 7
    assert "agentvine:bugfix" in intent.labels and not intent.is_pull_request


async def test_label_on_a_pull_request_carries_its_head():
    payload = payloads.retarget(payloads.load("pull_request", "labeled.payload.json"))
    payload["label"]["name"] = "agentvine:review"
    (intent,) = await intents_for("pull_request", payload)
    assert intent.is_pull_request and intent.head_sha == payload["pull_request"]["head"]["sha"]


async def test_a_push_to_a_pull_request_asks_for_a_review_of_its_head():
    payload = payloads.retarget(payloads.load("pull_request", "synchronize.payload.json"), installation_id=7)
    (intent,) = await intents_for("pull_request", payload)
    assert isinstance(intent, StartJob) and intent.is_pull_request
    assert intent.issue_number == payload["number"] == payload["pull_request"]["number"]
    assert intent.head_sha == payload["after"] == payload["pull_request"]["head"]["sha"]
    assert (intent.trigger.kind, intent.trigger.worker, intent.trigger.full) == ("push", "review", False)
    assert intent.labels == ["bug"] and intent.requester == "Codertocat"


async def test_a_push_to_a_closed_pull_request_or_by_a_bot_asks_for_nothing():
    payload = payloads.retarget(payloads.load("pull_request", "synchronize.payload.json"), installation_id=7)
    payload["pull_request"] = {**payload["pull_request"], "state": "closed"}
    assert await intents_for("pull_request", payload) == []
    payload = payloads.retarget(payloads.load("pull_request", "synchronize.payload.json"), installation_id=7,
                                sender="agentvine[bot]", sender_type="Bot")
    assert await intents_for("pull_request", payload) == []


@pytest.mark.parametrize("body, full, instruction", [
    ("/agentvine review", False, None),
    ("/agentvine review full", True, None),
    ("/agentvine review FULL focus on the parser", True, "focus on the parser"),
    ("/agentvine review the parser in full", False, "the parser in full"),
    ("/agentvine review fully", False, "fully"),
])
async def test_review_full_asks_for_the_whole_pull_request(body, full, instruction):
    payload = payloads.issue_comment(body=body, installation_id=7)
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
    (intent,) = await intents_for("issue_comment", payload)
    assert (intent.trigger.worker, intent.trigger.full, intent.trigger.instruction) == ("review", full, instruction)


async def test_bots_never_start_work():
    payload = payloads.labeled_issue(label="agentvine:bugfix", installation_id=7, sender="agentvine[bot]", sender_type="Bot")
    assert await intents_for("issues", payload) == []
    payload = payloads.issue_comment(body="/agentvine do it", installation_id=7, sender="renovate[bot]", sender_type="Bot")
    assert await intents_for("issue_comment", payload) == []


async def test_other_labels_are_ignored():
    assert await intents_for("issues", payloads.labeled_issue(label="bug", installation_id=7)) == []


async def test_slash_command_in_a_new_comment_starts_a_job():
    payload = payloads.issue_comment(body="/agentvine make the parser accept tabs", installation_id=7)
    (intent,) = await intents_for("issue_comment", payload)
    assert intent.trigger.kind == "command"
    assert intent.trigger.instruction == "make the parser accept tabs"
    assert intent.trigger.comment_id == payload["comment"]["id"]


async def test_edited_and_deleted_comments_trigger_nothing():
    for action in ("edited", "deleted"):
        payload = payloads.issue_comment(body="/agentvine do it", action=action, installation_id=7)
        assert await intents_for("issue_comment", payload) == []


async def test_subcommands_become_job_commands():
    (intent,) = await intents_for("issue_comment", payloads.issue_comment(body="/agentvine cancel", installation_id=7))
    assert isinstance(intent, JobCommand) and intent.name == "cancel" and intent.issue_number == 1


async def test_check_run_buttons_only_for_our_check_runs():
    payload = payloads.load("check_run", "requested_action.payload.json")
    assert await intents_for("check_run", payload) == []  # another app's check run
    payload["check_run"]["external_id"] = "agentvine:abc123"
    payload["requested_action"]["identifier"] = "cancel"
    (intent,) = await intents_for("check_run", payload)
    assert intent.name == "cancel" and intent.job_id == "abc123"
    rerun = payloads.load("check_run", "rerequested.payload.json")
    rerun["check_run"]["external_id"] = "agentvine:abc123"
    (intent,) = await intents_for("check_run", rerun)
    assert intent.name == "retry"


async def test_removed_repositories_cancel_their_work():
    intents = await intents_for("installation_repositories", payloads.load("installation_repositories", "removed.payload.json"))
    assert intents and all(i.name == "remove_installation" for i in intents)


async def test_review_command_on_a_pull_request_starts_a_review_job():
    payload = payloads.issue_comment(body="/agentvine review", installation_id=7)
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
    (intent,) = await intents_for("issue_comment", payload)
    assert isinstance(intent, StartJob) and intent.is_pull_request and intent.trigger.worker == "review"


async def test_plain_comment_may_be_an_answer():
    (intent,) = await intents_for("issue_comment", payloads.issue_comment(body="Use tabs, please.", installation_id=7))
    assert intent.name == "answer" and intent.text == "Use tabs, please."


def _ci_suite(branch: str = "agentvine/bugfix-1-x", conclusion: str = "failure", **target) -> dict:
    payload = payloads.retarget(payloads.load("check_suite", "completed.payload.json"), installation_id=7, **target)
    payload["check_suite"] = {**payload["check_suite"], "head_branch": branch, "conclusion": conclusion}
    return payload


async def test_ci_finishing_on_agentvines_pull_request_is_handed_to_the_worker():
    """From the bot that pushed too: CI's results are no person asking, and its sender asks for nothing."""
    payload = _ci_suite(sender="agentvine[bot]", sender_type="Bot", conclusion="success")
    (command,) = await intents_for("check_suite", payload)
    assert isinstance(command, JobCommand) and command.name == "ci_completed"
    suite = payload["check_suite"]
    assert command.issue_number == 2 and command.ci.pulls == [2] and command.ci.event == "check_suite"
    assert (command.ci.sha, command.ci.branch, command.ci.app_id) == (suite["head_sha"], suite["head_branch"], 29310)
    assert command.ci.conclusion == "success"  # the last suite to finish may pass while another failed


async def test_ci_on_other_branches_or_without_a_pull_request_is_not_looked_at():
    assert await intents_for("check_suite", _ci_suite(branch="changes")) == []
    payload = _ci_suite()
    payload["check_suite"]["pull_requests"] = []
    assert await intents_for("check_suite", payload) == []


async def test_a_failing_check_run_is_handed_over_and_a_passing_one_or_ours_is_not():
    payload = payloads.retarget(payloads.load("check_run", "completed.1.payload.json"), installation_id=7,
                                sender="github-actions[bot]", sender_type="Bot")
    payload["check_run"]["check_suite"]["head_branch"] = "agentvine/bugfix-1-x"
    (command,) = await intents_for("check_run", payload)
    assert command.ci.event == "check_run" and command.ci.conclusion == "failure" and command.ci.pulls == [2]
    passing = {**payload, "check_run": {**payload["check_run"], "conclusion": "success"}}
    assert await intents_for("check_run", passing) == []
    ours = {**payload, "check_run": {**payload["check_run"], "external_id": "agentvine:0123abcd"}}
    assert await intents_for("check_run", ours) == []


async def test_other_events_from_bots_still_start_nothing_beside_ci():
    payload = payloads.retarget(payloads.load("check_run", "rerequested.payload.json"), installation_id=7,
                                sender="agentvine[bot]", sender_type="Bot")
    payload["check_run"]["external_id"] = "agentvine:0123abcd"
    assert await intents_for("check_run", payload) == []  # a Re-run by a bot: nothing
