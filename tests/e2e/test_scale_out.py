"""AgentVine scaled out, end to end with real processes: two `serve --role web` instances, two
`serve --role worker` instances on two Docker engines (two "machines"), one PostgreSQL, the real
Claude Code CLI in the sandbox, the GitHub and model API fakes.

Deliveries spread over both web instances, some redelivered to the other one, make exactly one job
and one pull request each. A worker killed with SIGKILL mid-run loses its job to the other within
its lease; a worker paused past its lease publishes nothing once it wakes and stops its container;
a web instance killed right after its 202 loses nothing."""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest

from app.domain.job import JobState
from app.fakes.github.testing import running_fake
from app.fakes.model_api import FakeModelAPI, ScriptedTurn, ToolUse, serve_fake_model_api
from app.pipeline.present import texts
from app.store.postgres import PostgresJobStore
from tests.support.cluster import Cluster, Instance, until
from tests.support.harness import REPO, arrange_github, job_containers

pytestmark = [pytest.mark.docker, pytest.mark.claude]

LEASE_S = 5.0
TAKEOVER_BOUND_S = LEASE_S + 2.0 + 5.0  # the lease, the other worker's poll, a few seconds
SLOW = "take your time"  # an issue saying so gets a model that thinks a while: long enough to kill its worker
SLOW_TURN_S = 12.0
JOBS = 20


def respond(body: dict) -> ScriptedTurn:
    """Each conversation on its own: write x.py, then say so; slowly where the issue asks."""
    messages = body.get("messages") or []
    last = messages[-1].get("content") if messages else None
    if isinstance(last, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last):
        return ScriptedTurn(text="Added `x.py`.")
    slow = SLOW in json.dumps(messages[:1])
    return ScriptedTurn(text="Adding it.", delay_seconds=SLOW_TURN_S if slow else 0.0,
                        tool_uses=[ToolUse(name="Write", input={"file_path": "/workspace/x.py", "content": "X = 1\n"})])


def pulls_for(github, branch: str) -> list[dict]:
    return [p for p in github.pulls if p["head"]["ref"] == branch]


async def test_two_web_instances_and_two_workers_share_one_postgres(tmp_path, pg_url, sandbox_image, docker_client,
                                                                    extra_engine, extra_sandbox_image):
    model = FakeModelAPI(respond=respond)
    hosts = {"machine-a": "127.0.0.2", "machine-b": "127.0.0.3"}  # how the fake tells the workers apart
    async with running_fake(tmp_path, also_on=tuple(hosts.values())) as github, \
            serve_fake_model_api(model) as running_model:
        arrange_github(github)
        cluster = Cluster(tmp_path, github, pg_url, running_model.url, model.api_key, sandbox_image, settings={
            "AGENTVINE_LEASE_SECONDS": str(LEASE_S), "AGENTVINE_MAX_CONCURRENT_JOBS": "3",
            "AGENTVINE_MAX_JOBS_PER_REPO": "6", "AGENTVINE_MAX_JOBS_PER_INSTALLATION": "6"})
        store = PostgresJobStore(pg_url)
        engines = {"machine-a": (None, docker_client), "machine-b": (extra_engine.docker_host, extra_engine.client())}
        try:
            webs = [await cluster.start_web("web1"), await cluster.start_web("web2")]
            workers = {name: cluster.start_worker(name, host, hosts[name]) for name, (host, _) in engines.items()}

            # --- 20 issues over both web instances, 6 redelivered to the other one --------------------
            issues = [github.add_issue(REPO, title=f"Add x number {n}", user="alice")["number"] for n in range(JOBS)]
            bodies, ids = {}, {number: str(uuid.uuid4()) for number in issues}
            for i, number in enumerate(issues):
                status, bodies[number] = await cluster.deliver(webs[i % 2], number, delivery_id=ids[number])
                assert status == 202
            for i, number in enumerate(issues[:6]):
                status, _ = await cluster.deliver(webs[(i + 1) % 2], number, delivery_id=ids[number],
                                                  body=bodies[number])
                assert status == 202
            jobs = await until(lambda: _all_ended(store, JOBS), 600, "20 jobs ended")
            assert len(jobs) == JOBS and sorted(j.issue_number for j in jobs) == sorted(issues)
            assert all(j.state is JobState.SUCCEEDED for j in jobs), [(j.issue_number, j.reason) for j in jobs]
            assert len(github.pulls) == JOBS and len({p["head"]["ref"] for p in github.pulls}) == JOBS
            assert len({j.outcome.pr_number for j in jobs}) == JOBS
            holders = [e.data["holder"] for j in jobs for e in store.events(j.id) if e.kind == "started"]
            assert len(holders) == JOBS and {h.split(":")[0] for h in holders} == set(engines)  # both worked
            assert {_machine(hosts, host) for _, _, _, host in github.writes} >= set(engines)  # and published

            # --- kill -9 the worker running a job: the other takes it over -----------------------------
            job, holder = await _slow_job_running(cluster, github, store, webs[0], engines)
            victim = workers[holder.split(":")[0]]
            killed_at = time.time()
            victim.kill()
            done = await until(lambda: (j := store.get_job(job.id)).terminal and j, 300, "the job taken over ends")
            recovered = [e for e in store.events(job.id) if e.kind == "recovered"]
            assert len(recovered) == 1 and recovered[0].data["previous_holder"] == holder
            takeover_s = recovered[0].at - killed_at
            assert takeover_s < TAKEOVER_BOUND_S, takeover_s
            print(f"\ntakeover after kill -9: {takeover_s:.1f} s (lease {LEASE_S:g} s)")
            assert done.state is JobState.SUCCEEDED and done.interruption == texts.INTERRUPTED_TAKEN_OVER
            assert len(pulls_for(github, done.branch)) == 1
            tracking = github.comments_on(REPO, done.issue_number)[0]["body"]
            assert texts.INTERRUPTED_TAKEN_OVER in tracking
            engine = engines[victim.name][1]
            assert job_containers(engine, job.id), "the dead worker's container is still on its machine"
            workers[victim.name] = cluster.start_worker(victim.name, engines[victim.name][0], hosts[victim.name])
            await until(lambda: not job_containers(engine, job.id), 60, "its machine's janitor removed the container")

            # --- SIGSTOP a worker past its lease: once awake it publishes nothing ----------------------
            job, holder = await _slow_job_running(cluster, github, store, webs[1], engines)
            paused = workers[holder.split(":")[0]]
            engine = engines[paused.name][1]
            paused.kill(signal.SIGSTOP)
            await until(lambda: any(e.kind == "recovered" for e in store.events(job.id)), 60, "another took it over")
            events_before = len(store.events(job.id))
            woke = time.time()
            paused.kill(signal.SIGCONT)
            await until(lambda: not job_containers(engine, job.id), 60, "the paused worker stopped its container")
            done = await until(lambda: (j := store.get_job(job.id)).terminal and j, 300, "the job ends")
            assert done.state is JobState.SUCCEEDED and len(pulls_for(github, done.branch)) == 1
            later = store.events(job.id)[events_before:]
            assert not [e for e in later if e.data.get("holder") == holder]
            assert "the lease is lost" in paused.output()
            # Nothing at all reached GitHub from the paused worker once it woke: no comment, no check run, no push.
            assert [w for w in github.writes if w[0] >= woke and _machine(hosts, w[3]) == paused.name] == []

            # --- kill -9 a web instance right after its 202: the delivery is still imported ------------
            number = github.add_issue(REPO, title="Add x, after the web died", user="alice")["number"]
            status, _ = await cluster.deliver(webs[1], number, delivery_id=str(uuid.uuid4()))
            webs[1].kill()
            assert status == 202
            job = await until(lambda: next((j for j in store.list_jobs() if j.issue_number == number), None), 60,
                              "the delivery was imported")
            done = await until(lambda: (j := store.get_job(job.id)).terminal and j, 300, "its job ends")
            assert done.state is JobState.SUCCEEDED
            github.assert_no_violations()
        finally:
            cluster.stop()
            store.close()


def _machine(hosts: dict[str, str], host_header: str) -> str | None:
    return next((name for name, address in hosts.items() if host_header.split(":")[0] == address), None)


def _all_ended(store, count: int):
    jobs = store.list_jobs()
    return jobs if len(jobs) >= count and all(j.terminal for j in jobs) else None


async def _slow_job_running(cluster: Cluster, github, store, web: Instance, engines: dict):
    """A job whose model thinks a while, running in its sandbox: the job, and its lease's holder."""
    number = github.add_issue(REPO, title=f"Add x, {SLOW}", body=SLOW, user="alice")["number"]
    status, _ = await cluster.deliver(web, number, delivery_id=str(uuid.uuid4()))
    assert status == 202
    job = await until(lambda: next((j for j in store.list_jobs([JobState.RUNNING]) if j.issue_number == number), None),
                      120, "the slow job runs")
    holder, _epoch = await until(lambda: store.lease_of(job.id), 30, "its lease")
    engine = engines[holder.split(":")[0]][1]
    await until(lambda: job_containers(engine, job.id), 60, "its sandbox runs")
    return job, holder
