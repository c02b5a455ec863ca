"""What `agentvine replay --embedded` arranges on the embedded GitHub from a payload: GitHub's own
examples, and payloads that would make it write outside its folders or into git's input."""

from __future__ import annotations

import json

import pytest

from app.fakes.github.testing import running_fake
from app.operator.replay_embedded import arrange
from app.operator.replay_scene import SceneError, scene_from_payload
from tests.support.env import WEBHOOKS


def example(event: str, name: str) -> dict:
    return json.loads((WEBHOOKS / event / name).read_text())


async def test_an_issue_comment_arranges_its_issue_under_its_number_and_its_comment_under_its_id(tmp_path):
    payload = example("issue_comment", "created.with-installation.payload.json")
    payload["issue"]["number"] = 7
    scene = scene_from_payload(payload)
    async with running_fake(tmp_path) as github:
        said = arrange(github, scene, "issue_comment", "maintain")
        repo = github.repo("Codertocat/Hello-World")
        assert said == ("arranged Codertocat/Hello-World (installation 1) and @Codertocat with maintain permission, "
                        f"issue #7 and comment {payload['comment']['id']}")
        assert github.issue(repo.full_name, 7)["title"] == payload["issue"]["title"]
        assert [label["name"] for label in github.issue(repo.full_name, 7)["labels"]] == ["bug"]
        assert [c["id"] for c in github.comments_on(repo.full_name, 7)] == [payload["comment"]["id"]]
        assert github.permission_of(repo, "Codertocat") == "maintain"
        assert github.installations[1]["account"]["login"] == "Codertocat"
        assert repo.default_branch == payload["repository"]["default_branch"]
        assert github.add_issue(repo.full_name, title="next")["number"] == 8  # what the bot opens follows it
        github.assert_no_violations()


async def test_a_labelled_pull_request_gets_a_head_branch_of_its_own_and_the_label(tmp_path):
    payload = example("pull_request", "labeled.payload.json")
    payload["label"]["name"] = "agentvine:review"
    scene = scene_from_payload(payload)
    assert scene.is_pull and scene.label_names == ["bug", "agentvine:review"]
    async with running_fake(tmp_path) as github:
        arrange(github, scene, "pull_request", "write")
        pull = github.pull("Codertocat/Hello-World", payload["number"])
        assert pull["title"] == payload["pull_request"]["title"]
        assert pull["head"]["ref"] == "changes" and pull["base"]["ref"] == "master"
        assert pull["changed_files"] == 1  # the head's placeholder commit
        assert [label["name"] for label in pull["labels"]] == ["bug", "agentvine:review"]


async def test_a_pull_request_whose_head_is_the_default_branch_gets_a_branch_of_its_own(tmp_path):
    """AgentVine refuses to push to the default branch; a hand-made payload may name it as the head."""
    payload = example("pull_request", "labeled.payload.json")
    payload["pull_request"]["head"]["ref"] = "master"
    async with running_fake(tmp_path) as github:
        arrange(github, scene_from_payload(payload), "pull_request", "write")
        assert github.pull("Codertocat/Hello-World", 2)["head"]["ref"] == "replay/pull-2"


HOSTILE = {
    "a repository outside the git root": ({"repository": {"full_name": "../../etc/passwd"}},
                                          "repository.full_name: must be owner/name as GitHub spells them"),
    "a repository named ..": ({"repository": {"full_name": "owner/.."}}, "repository.full_name: must be owner/name"),
    "a branch that writes git's input": ({"pull_request": {"number": 1, "head": {"ref": "x\nreset refs/heads/main"}}},
                                         "pull_request.head.ref: is not a branch name git takes"),
    "a default branch with ..": ({"repository": {"full_name": "o/r", "default_branch": "a/../b"}},
                                 "repository.default_branch: is not a branch name git takes"),
    "a login with a newline": ({"sender": {"login": "alice\n"}}, "sender.login: is not a GitHub login"),
    "an installation id of text": ({"installation": {"id": "one"}}, "installation.id: Input should be a valid integer"),
    "an issue number of 0": ({"issue": {"number": 0}}, "issue.number: Input should be greater than or equal to 1"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_payload_the_embedded_github_cannot_hold_is_refused_naming_the_field(case):
    change, message = HOSTILE[case]
    payload = {"installation": {"id": 1}, "repository": {"full_name": "o/r"}, "sender": {"login": "alice"}}
    payload.update(change)
    with pytest.raises(SceneError) as refused:
        scene_from_payload(payload)
    assert message in str(refused.value)


def test_every_part_missing_is_named_at_once():
    with pytest.raises(SceneError) as refused:
        scene_from_payload({"action": "labeled"})
    assert [line.split(":")[0] for line in str(refused.value).splitlines()[1:]] == \
        ["  - installation", "  - repository", "  - sender"]
