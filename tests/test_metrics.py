"""app/metrics.py: label values that come from outside stay bounded; what is recorded reads back in
Prometheus' text format."""

from __future__ import annotations

from app import metrics
from tests.support.metrics import here


def test_values_from_outside_past_their_bound_fold_into_other():
    bounded = metrics._Bounded(3)
    assert [bounded(v) for v in ("a", "b", None, "c", "a", "x" * 500)] == ["a", "b", "none", "other", "a", "other"]
    assert metrics._Bounded(10)("x" * 500) == "x" * 100  # nor can one value be long


def test_a_job_that_ends_counts_its_move_its_end_and_its_life():
    before = here()
    metrics.job_moved("docs", "running", False, None, 5.0)
    metrics.job_moved(None, "failed", True, "timed_out", 42.0)
    after = here()
    assert after.since(before, "agentvine_job_transitions_total", worker="docs", state="running") == 1
    assert after.since(before, "agentvine_jobs_finished_total", worker="none", state="failed", conclusion="timed_out") == 1
    assert after.since(before, "agentvine_job_duration_seconds_sum", worker="none", state="failed") == 42.0
    assert after.since(before, "agentvine_job_duration_seconds_bucket", worker="none", state="failed", le="60.0") == 1
    assert after.since(before, "agentvine_job_duration_seconds_bucket", worker="none", state="failed", le="30.0") == 0
    assert after.since(before, "agentvine_job_duration_seconds_count", worker="docs", state="running") == 0


def test_a_run_without_an_agent_has_no_overhead_to_show():
    before = here()
    metrics.agent_run("review", 3.0, None)
    metrics.agent_run("review", 3.0, 2.25)
    after = here()
    assert after.since(before, "agentvine_run_overhead_seconds_count", worker="review") == 1
    assert after.since(before, "agentvine_run_overhead_seconds_sum", worker="review") == 0.75


def test_a_rate_limit_header_that_is_not_a_number_is_ignored():
    metrics.github_request("GET /x", 77, 200, "12")
    metrics.github_request("GET /x", 77, 200, "lots")
    metrics.github_request("GET /x", 77, 200, None)
    assert here().value("agentvine_github_rate_limit_remaining", installation="77") == 12
