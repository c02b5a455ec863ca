"""The fake can take an issue's number and a comment's id from a recorded payload (`agentvine replay
--embedded`): what it numbers afterwards follows, and a number or id already taken is refused."""

from __future__ import annotations

import pytest

from app.fakes.github.state import FakeGitHub


@pytest.fixture
def fake(tmp_path) -> FakeGitHub:
    fake = FakeGitHub(data_dir=tmp_path)
    fake.add_installation(1, "octo-org", account_type="Organization")
    fake.add_repo("octo-org/hello", installation_id=1)
    return fake


def test_an_issue_with_a_given_number_is_followed_by_the_next_numbers(fake):
    assert fake.add_issue("octo-org/hello", title="first")["number"] == 1
    assert fake.add_issue("octo-org/hello", title="recorded", number=1347)["number"] == 1347
    assert fake.add_issue("octo-org/hello", title="after")["number"] == 1348
    assert fake.add_issue("octo-org/hello", title="in a gap", number=5)["number"] == 5
    assert fake.add_issue("octo-org/hello", title="still after")["number"] == 1349
    with pytest.raises(ValueError, match="cannot have another #1347"):
        fake.add_issue("octo-org/hello", title="again", number=1347)


def test_a_pull_request_takes_a_given_number_too(fake):
    fake.push_files("octo-org/hello", "feature", {"a.txt": "a\n"})
    pull = fake.add_pull("octo-org/hello", head="feature", base="main", title="recorded", number=40)
    assert pull["number"] == 40 and fake.issue("octo-org/hello", 40)["pull_request"]
    assert fake.add_issue("octo-org/hello", title="after")["number"] == 41


def test_a_comment_with_a_given_id_and_the_ids_after_it(fake):
    fake.add_issue("octo-org/hello", title="t")
    given = fake.add_comment("octo-org/hello", 1, body="recorded", user="alice", comment_id=492700400)
    assert given["id"] == 492700400 and given["html_url"].endswith("#issuecomment-492700400")
    counted = fake.add_comment("octo-org/hello", 1, body="next", user="alice")
    assert counted["id"] not in (492700400,) and len(fake.comments_on("octo-org/hello", 1)) == 2
    with pytest.raises(ValueError, match="a comment 492700400 exists already"):
        fake.add_comment("octo-org/hello", 1, body="again", user="alice", comment_id=492700400)
