"""The egress report as people read it: blocked hosts in the check run and the pull request, what
went through, and nothing when the sandbox asked for nothing."""

from __future__ import annotations

from app.domain.egress import EgressHost, EgressReport
from app.domain.job import Job, Outcome, Trigger
from app.pipeline.present import render, texts
from app.pipeline.present.egress import MAX_HOSTS_SHOWN, check_run_section, pull_request_note


def report(*hosts: EgressHost) -> EgressReport:
    return EgressReport(hosts=list(hosts))


BLOCKED = EgressHost(host="evil.example", port=443, allowed=False, requests=2,
                     reason="evil.example:443 is not on this job's egress allow-list")
REACHED = EgressHost(host="pypi.org", port=443, allowed=True, requests=12, bytes_up=4_000, bytes_down=3_400_000)


def test_blocked_and_reached_hosts_in_the_check_run():
    section = check_run_section(report(BLOCKED, REACHED))
    assert "**Egress: blocked 1 host**" in section
    assert "- blocked: `evil.example:443` (2 requests): evil.example:443 is not on this job's egress allow-list" in section
    assert "`egress.allow` in `.github/agentvine.yml`" in section and "`AGENTVINE_EGRESS_ALLOW`" in section
    assert "**Egress: reached** `pypi.org:443` (12 requests, 3.4 MB down)" in section


def test_nothing_asked_nothing_shown():
    assert check_run_section(None) == check_run_section(report()) == ""
    assert pull_request_note(None, "u") == pull_request_note(report(REACHED), "u") == ""


def test_a_reason_cannot_mention_or_reference_anyone():
    odd = BLOCKED.model_copy(update={"reason": "see @octocat and #12\nsecond line"})
    section = check_run_section(report(odd))
    assert "@\u200boctocat" in section and "#\u200b12" in section and "second line" in section
    assert "\nsecond line" not in section  # one line


def test_many_hosts_are_cut_with_a_count():
    hosts = [EgressHost(host=f"h{i}.example.org", port=443, allowed=False, requests=1, reason="no") for i in range(25)]
    section = check_run_section(report(*hosts))
    assert section.count("- blocked: ") == MAX_HOSTS_SHOWN and f"… and {25 - MAX_HOSTS_SHOWN} more" in section
    assert f"… and {25 - MAX_HOSTS_SHOWN} more" in pull_request_note(report(*hosts), "u")


def job_with(egress: EgressReport | None) -> Job:
    return Job(delivery_id="d", installation_id=1, repo="o/r", issue_number=7, requester="alice",
               trigger=Trigger(kind="label"), worker="bugfix", level="supervised", model="m", egress=egress,
               outcome=Outcome(conclusion="success", title="Opened #8"))


def test_the_pull_request_warns_of_what_was_blocked_and_links_the_check_run():
    job = job_with(report(BLOCKED, REACHED))
    body = render.pull_request_body(job, job.outcome, "https://github.example/checks/1")
    note = texts.EGRESS_PR_NOTE.format(hosts="`evil.example:443`", check_url="https://github.example/checks/1")
    assert note in body and "pypi.org" not in body
    assert body.index("> [!WARNING]") < body.index("### Files changed")
    plain = render.pull_request_body(job_with(None), job.outcome, "u")
    assert "[!WARNING]" not in plain and "\n\n### Files changed" in plain


def test_the_final_check_run_carries_the_section():
    job = job_with(report(BLOCKED))
    summary = render.check_run_final(job, render.Progress())["output"]["summary"]
    assert "- blocked: `evil.example:443`" in summary
    assert summary.index("**Result: Opened #8**") < summary.index("**Egress: blocked 1 host**")


def test_a_request_that_named_no_host_is_shown_as_such():
    odd = EgressHost(host="(malformed request)", port=0, allowed=False, requests=3, reason="malformed request")
    assert "- blocked: `(malformed request)` (3 requests): malformed request" in check_run_section(report(odd))
