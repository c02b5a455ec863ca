"""Scale-out benchmark, on a private PostgreSQL server (Debian's package, tests/support/postgres.py).

1. Acknowledgement latency with 1 and with 2 workers: real processes, `serve --role web` and
   `serve --role worker` x N, the GitHub fake in this process. From sending a labelled delivery to the
   job's `acknowledged` event (👀, tracking comment and check run are on the fake by then): deliveries
   one at a time (the wake-up path: NOTIFY, claim, the ack stage), then a burst sent at once (how fast
   N workers work through it). No model key: each run ends at once, without a sandbox.
2. Lease takeover: two dispatchers on one store; the one holding a job stops renewing (its machine
   died); how long until the other has taken the job over, for several lease lengths, with the
   workers' production poll interval (a lease running out sends no NOTIFY).

Usage: python bench/scale_out.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.assembly import LISTEN_POLL_S  # noqa: E402
from app.domain.job import Delivery, Job, JobState, Trigger  # noqa: E402
from app.engine.dispatcher import Dispatcher, Hooks, Limits, Stage  # noqa: E402
from app.engine.leases import WorkerIdentity  # noqa: E402
from app.fakes.github.testing import running_fake  # noqa: E402
from app.store.postgres import PostgresJobStore  # noqa: E402
from tests.support.cluster import Cluster, until  # noqa: E402
from tests.support.harness import REPO, arrange_github  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def acknowledged_at(store: PostgresJobStore, job_id: str) -> float | None:
    return next((e.at for e in store.events(job_id) if e.kind == "acknowledged"), None)


async def ack_latency(server: PostgresServer, workers: int, singles: int, burst: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="av-bench-") as tmp, server.fresh_database() as url:
        root = Path(tmp)
        async with running_fake(root) as github:
            arrange_github(github)
            cluster = Cluster(root, github, url, model_url=None, model_key=None, image="none", settings={
                "AGENTVINE_MAX_JOBS_PER_REPO": "100", "AGENTVINE_MAX_JOBS_PER_INSTALLATION": "100"})
            store = PostgresJobStore(url)
            try:
                web = await cluster.start_web("web")
                for n in range(workers):
                    cluster.start_worker(f"machine-{n}")
                await until(lambda: _workers_seen(store) >= workers, 60, "the workers' first heartbeats")
                singles_s = []
                for n in range(singles + 1):
                    number = github.add_issue(REPO, title=f"single {n}", user="alice")["number"]
                    sent = time.time()
                    await cluster.deliver(web, number, delivery_id=str(uuid.uuid4()))
                    job = await until(lambda: _job_for(store, number), 30, "imported", interval=0.005)
                    at = await until(lambda: acknowledged_at(store, job.id), 30, "acknowledged", interval=0.005)
                    if n:  # the first warms up connections and caches
                        singles_s.append(at - sent)
                numbers = [github.add_issue(REPO, title=f"burst {n}", user="alice")["number"] for n in range(burst)]
                sent, cpu, busy = time.time(), time.process_time(), _machine_busy()
                await asyncio.gather(*(cluster.deliver(web, number, delivery_id=str(uuid.uuid4()))
                                       for number in numbers))
                jobs = await until(lambda: all(_job_for(store, n) for n in numbers) and [_job_for(store, n) for n in numbers],
                                   120, "the burst imported", interval=0.05)
                ats = await until(lambda: all(acknowledged_at(store, j.id) for j in jobs)
                                  and [acknowledged_at(store, j.id) for j in jobs], 300, "the burst acknowledged", interval=0.05)
                wall = max(ats) - sent
                fake_cpu, machine = time.process_time() - cpu, _machine_busy()  # (sampled a little after the last ack)
                holders = {e.data.get("holder", "").split(":")[0] for j in jobs for e in store.events(j.id)
                           if e.kind == "started"}
            finally:
                cluster.stop()
                store.close()
    return {"workers": workers, "single_p50_ms": round(statistics.median(singles_s) * 1000, 1),
            "single_p99_ms": round(pct(singles_s, 99) * 1000, 1), "burst": burst,
            "burst_all_acknowledged_s": round(max(ats) - sent, 2),
            "burst_acks_per_s": round(burst / wall, 1), "burst_workers_used": len(holders - {""}),
            # Where the burst's time went: the GitHub fake (this process) and the machine's two cores.
            "fake_cpu_s": round(fake_cpu, 2), "machine_busy_share": round((machine[0] - busy[0]) / (machine[1] - busy[1]), 2)}


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine so far (/proc/stat)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _workers_seen(store: PostgresJobStore) -> int:
    with store._read() as db:  # noqa: SLF001 - a benchmark's look at the heartbeats
        return db.execute("SELECT count(*) FROM workers").fetchone()[0]


def _job_for(store: PostgresJobStore, number: int) -> Job | None:
    jobs = store.list_jobs(repo=REPO, issue_number=number)
    return jobs[0] if jobs else None


async def takeover(server: PostgresServer, lease_s: float, rounds: int) -> dict:
    """A stage that holds its job until told; dispatcher A's heartbeat and loop stop without releasing
    anything (its machine is gone), B takes the job over."""
    times, after_end = [], []  # since A died; since its lease ran out
    for n in range(rounds):
        with server.fresh_database() as url:  # a round's leftovers (its job, stopped mid-run) stay in its own
                store_a, store_b = PostgresJobStore(url), PostgresJobStore(url)
                job = Job(delivery_id=f"t{n}", installation_id=1, repo="o/r", issue_number=n, requester="a",
                          trigger=Trigger(kind="label"), state=JobState.ACKNOWLEDGED)
                store_a.record_delivery(Delivery(id=f"t{n}", event="issues"), [job])
                started = {"a": asyncio.Event(), "b": asyncio.Event()}

                def stage(who: str, store: PostgresJobStore):
                    async def run(job: Job, cancel: asyncio.Event) -> None:
                        store.save_job(job.moved_to(JobState.RUNNING), "running")
                        started[who].set()
                        await cancel.wait()  # until the dispatcher stops it
                    return run

                def dispatcher(who: str, store: PostgresJobStore) -> Dispatcher:
                    return Dispatcher(store, [Stage("run", JobState.ACKNOWLEDGED, stage(who, store), Limits(total=1))],
                                      Hooks(), interrupted_states={JobState.RUNNING: JobState.ACKNOWLEDGED},
                                      poll_interval=LISTEN_POLL_S, identity=WorkerIdentity.new(f"m-{who}", lease_s))
                a = dispatcher("a", store_a)
                await a.start()
                a.wake()
                await asyncio.wait_for(started["a"].wait(), 30)
                b = dispatcher("b", store_b)
                await b.start()
                watch = asyncio.create_task(store_b.watch(b.wake))
                await asyncio.sleep(lease_s * 0.5)  # somewhere in A's lease
                for task in (a._heartbeat_task, a._loop_task):  # noqa: SLF001 - the machine dies
                    task.cancel()
                died = time.monotonic()
                with store_b._read() as db:  # noqa: SLF001 - how much of A's lease was left when it died
                    left = store_b._run(db, "SELECT lease_until - {now} FROM jobs WHERE id=?", (job.id,)).fetchone()[0]
                await asyncio.wait_for(started["b"].wait(), lease_s * 3 + 10)
                times.append(time.monotonic() - died)
                after_end.append(times[-1] - left)
                watch.cancel()
                await b.stop()
                leftovers = [active.task for active in a._active.values()]  # noqa: SLF001 - what is left of A
                for task in leftovers:
                    task.cancel()
                await asyncio.gather(*leftovers, return_exceptions=True)
                store_a.close()
                store_b.close()
    return {"lease_s": lease_s, "poll_s": LISTEN_POLL_S, "rounds": rounds,
            "takeover_median_s": round(statistics.median(times), 2), "takeover_max_s": round(max(times), 2),
            "after_lease_end_median_s": round(statistics.median(after_end), 2),
            "after_lease_end_max_s": round(max(after_end), 2)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    singles, burst, rounds = (5, 20, 1) if args.quick else (20, 200, 3)
    server = PostgresServer.for_tests()
    try:
        results = {"ack": [await ack_latency(server, n, singles, burst) for n in (1, 2)],
                   "takeover": [await takeover(server, lease, rounds) for lease in (5.0, 10.0)]}
    finally:
        server.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
