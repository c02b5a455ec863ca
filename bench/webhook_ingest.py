"""Webhook ingestion benchmark.

Signed `issues.labeled` deliveries (GitHub's example payload, with AgentVine's label, so every
one of them stores a job that the dispatcher then acknowledges against the GitHub fake while
the load goes on). Measured in one run on one machine:

1. throughput, closed loop (N concurrent senders), of AgentVine and of a bare aiohttp handler
   that only answers 202 (the ceiling), in alternating rounds; medians;
2. latency of the 202 (p50/p99) at a fixed arrival rate (open loop, 200 deliveries/s): each
   latency counts from the moment the delivery was due, so a stall is not hidden;
3. acknowledgement latency: delivery → 👀 + tracking comment + check run on GitHub (from the
   job's event log), for deliveries sent one at a time;
4. how long the worker takes to import the backlog (1) left in the inbox.

With --store postgresql, (1) and (2) also measure a web instance as on PostgreSQL, which commits each
delivery to the database's inbox table before its 202 (app/store/pg_inbox.py), in the same alternating
rounds: the file inbox's figure and the table's side by side. The database is --database-url's, else
a private server started for the run (tests/support/postgres.py: fsync and synchronous_commit off, as
for the tests; --durable-commit turns them on, so that each commit waits for its WAL on disk).

Each server runs in its own process. Usage: python bench/webhook_ingest.py [--quick] [--store postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.fakes.github.webhooks import delivery_headers, labeled_issue, sign  # noqa: E402

# GitHub's recorded example delivery (12.7 KB), from the shared test data beside the checkout.
TESTDATA = Path(os.environ.get("AGENTVINE_TESTDATA", ROOT.parent / "shared" / "testdata"))
EXAMPLE = TESTDATA / "github" / "webhooks" / "issues" / "labeled.payload.json"

SECRET = "bench-secret"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    stderr = open(log, "w") if log else None  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=stderr, text=True)


async def wait_up(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


EVENTS = itertools.count(1)  # across every Sender of the run
MARKER = "bench-marker"  # 12 characters, in the label's node_id: each delivery's body is a new event's, of the same size


class Sender:
    def __init__(self, url: str, payload: dict) -> None:
        self.url = url + "/webhooks"
        marked = {**payload, "label": {**payload["label"], "node_id": MARKER}}
        self.body = json.dumps(marked).encode()  # wrk sends this one body: after the first, replays that start nothing
        self._head, self._tail = self.body.split(MARKER.encode())
        self.statuses: dict[int, int] = {}

    def next_body(self) -> bytes:
        """The body of a new event (AgentVine starts nothing for a signed body it has seen: a replay)."""
        return b"%s%012d%s" % (self._head, next(EVENTS), self._tail)

    async def send(self, session: aiohttp.ClientSession) -> float:
        body = self.next_body()
        headers = delivery_headers("issues", body, SECRET, delivery_id=str(uuid.uuid4()))
        began = time.perf_counter()
        async with session.post(self.url, data=body, headers=headers) as response:
            await response.read()
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        return time.perf_counter() - began


def wrk_rate(url: str, body: bytes, seconds: float, concurrency: int) -> float:
    """Deliveries/s that wrk (C, one thread) gets answered 2xx: a client that is not the bottleneck."""
    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        file.write(body)
        file.flush()
        env = {**os.environ, "BODY_FILE": file.name, "SIGNATURE": sign(body, SECRET), "DELIVERY_PREFIX": uuid.uuid4().hex}
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", str(ROOT / "bench" / "deliveries.lua"), url + "/webhooks"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(out.split("Requests/sec:")[1].split()[0])


CLIENT = "wrk"


async def closed_loop(sender: Sender, seconds: float, concurrency: int) -> float:
    if CLIENT == "wrk" and shutil.which("wrk"):
        return await asyncio.to_thread(wrk_rate, sender.url.removesuffix("/webhooks"), sender.body, seconds, concurrency)
    if CLIENT == "wrk":
        print("wrk not found (apt-get install wrk): the Python client may be the bottleneck", file=sys.stderr)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await sender.send(session)
            done += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - began)


async def open_loop(sender: Sender, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []

    async def one(session: aiohttp.ClientSession, due: float) -> None:
        await sender.send(session)
        latencies.append(time.perf_counter() - due)  # from when it was due: no coordinated omission

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        began = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            due = began + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, due)))
        await asyncio.gather(*tasks)
    return latencies


async def imported_jobs(session: aiohttp.ClientSession, url: str, delivery_id: str, timeout: float = 600) -> list[str]:
    """The jobs a delivery started, once the worker has taken it from the inbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(f"{url}/deliveries/{delivery_id}") as response:
            if response.status == 200:
                return (await response.json())["jobs"]
        await asyncio.sleep(0.005)
    raise TimeoutError(f"delivery {delivery_id} was not imported")


async def wait_imported(url: str, sender: Sender, timeout: float = 600) -> None:
    """Until a delivery sent now is in the store: the inbox is imported in order."""
    async with aiohttp.ClientSession() as session:
        body = sender.next_body()
        headers = delivery_headers("issues", body, SECRET, delivery_id=str(uuid.uuid4()))
        async with session.post(sender.url, data=body, headers=headers) as response:
            delivery_id = (await response.json())["delivery"]
        await imported_jobs(session, url, delivery_id, timeout)


async def ack_latencies(url: str, payload: dict, count: int) -> list[float]:
    """From the 202 to the acknowledgement: the worker imports the delivery from the inbox,
    routes it, stores the job, then reacts, comments and creates the check run."""
    sender = Sender(url, payload)
    results = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            body = sender.next_body()
            headers = delivery_headers("issues", body, SECRET, delivery_id=str(uuid.uuid4()))
            async with session.post(sender.url, data=body, headers=headers) as response:
                delivery_id = (await response.json())["delivery"]
            received = time.time()
            (job_id,) = await imported_jobs(session, url, delivery_id)
            while True:
                async with session.get(f"{url}/jobs/{job_id}") as response:
                    page = await response.json()
                if any(e["kind"] in ("acknowledged", "failed", "rejected") for e in page["events"]):
                    break
                await asyncio.sleep(0.005)
            acknowledged = next(e["at"] for e in page["events"] if e["kind"] == "acknowledged")
            results.append(acknowledged - received)
    return results


class Database:
    """The PostgreSQL database the table's web instance writes to: the one given, or a private server's."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.server = None
        self.url = args.database_url
        if self.url is None:
            from tests.support.postgres import PostgresServer

            self.server = PostgresServer.start_private()
            self.server.create_database("agentvine_bench")
            self.url = self.server.url("agentvine_bench")
            if args.durable_commit:
                import psycopg

                with psycopg.connect(self.url, autocommit=True) as conn:
                    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                        conn.execute(f"ALTER SYSTEM SET {setting} = on")
                    conn.execute("SELECT pg_reload_conf()")

    def counts(self) -> tuple[int, int]:
        """Rows in the inbox table, and transactions committed in the database so far."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
            conn.execute("SELECT pg_stat_force_next_flush()")
            return rows, conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                                      ).fetchone()[0]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


async def table_instance(args: argparse.Namespace, env: dict[str, str], work: Path, procs: list) -> tuple[str, Database]:
    """A web instance on PostgreSQL (no worker: deliveries pile up in the table, as in the file inbox while the
    worker is stopped); its URL."""
    database = Database(args)
    port = free_port()
    procs.append(start([sys.executable, "bench/servers.py", "web", "--port", str(port), "--database-url", database.url],
                       {**env, "AGENTVINE_DATA_DIR": str(work / "agentvine-pg")}, log=work / "agentvine-pg.log"))
    url = f"http://127.0.0.1:{port}"
    await wait_up(url + "/health")
    return url, database


def table_results(bare_rounds: list[float], ingest_rounds: list[float], table_rounds: list[float],
                  latencies: list[float]) -> dict:
    bare, files, table = (statistics.median(r) for r in (bare_rounds, ingest_rounds, table_rounds))
    ms = [v * 1000 for v in latencies]
    return {"ingest_per_s_worker_paused": round(table), "ingest_ratio": round(table / bare, 2),
            "vs_file_inbox": round(table / files, 2), "rounds": [round(v) for v in table_rounds],
            "p50_ms": round(pct(ms, 50), 2), "p99_ms": round(pct(ms, 99), 2), "max_ms": round(max(ms), 2)}


async def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    key_file = work / "app.pem"
    fake_port, bot_port, bare_port = free_port(), free_port(), free_port()
    # The fake stands in for GitHub, whose CPU is not ours: it runs at the lowest priority.
    database: Database | None = None
    procs = [start(["nice", "-n", "19", sys.executable, "bench/servers.py", "fake", "--port", str(fake_port), "--key-file", str(key_file)])]
    try:
        fake = json.loads(procs[0].stdout.readline())
        env = {
            "AGENTVINE_APP_ID": str(fake["app_id"]),
            "AGENTVINE_PRIVATE_KEY_PATH": str(key_file),
            "AGENTVINE_WEBHOOK_SECRET": SECRET,
            "AGENTVINE_GITHUB_API_URL": fake["url"],
            "AGENTVINE_DATA_DIR": str(work / "agentvine"),
        }
        procs.append(start([sys.executable, "-m", "app", "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
                            "--port", str(bot_port)], env, log=work / "agentvine.log"))
        procs.append(start([sys.executable, "bench/servers.py", "bare", "--port", str(bare_port)]))
        bot_url, bare_url = f"http://127.0.0.1:{bot_port}", f"http://127.0.0.1:{bare_port}"
        await wait_up(bot_url + "/health")
        await wait_up(bare_url + "/")
        payload = labeled_issue(json.loads(EXAMPLE.read_text()), label=args.label, repo=fake["repository"],
                                issue=fake["issue"], installation_id=1001, sender="alice")
        table_url, database = await table_instance(args, env, work, procs) if args.store == "postgresql" else (None, None)
        table_sender = Sender(table_url, payload) if table_url else None
        table_before = database.counts() if database else (0, 0)

        # The first delivery meets a worker process that may still be starting (imports, Docker check).
        cold = (await ack_latencies(bot_url, payload, 1))[0] if args.acks else 0.0
        ack = await ack_latencies(bot_url, payload, args.acks) if args.acks else [0.0]
        async with aiohttp.ClientSession() as session:
            async with session.get(bot_url + "/health") as response:
                worker_pid = (await response.json())["worker_pid"]
        bare_sender, bot_sender = Sender(bare_url, payload), Sender(bot_url, payload)
        await closed_loop(bare_sender, 1, args.concurrency)  # warm-up
        # (a) ingestion capacity: the worker is busy elsewhere (stopped), deliveries only pile up.
        # Rounds alternate between the two servers, so a drift of the machine hits both alike.
        bare_rounds, ingest_rounds, table_rounds = [], [], []
        os.kill(worker_pid, signal.SIGSTOP)
        try:
            for _ in range(args.rounds):
                bare_rounds.append(await closed_loop(bare_sender, args.seconds / args.rounds, args.concurrency))
                ingest_rounds.append(await closed_loop(bot_sender, args.seconds / args.rounds, args.concurrency))
                if table_sender:
                    table_rounds.append(await closed_loop(table_sender, args.seconds / args.rounds, args.concurrency))
        finally:
            os.kill(worker_pid, signal.SIGCONT)
        bare_rps, ingest_rps = statistics.median(bare_rounds), statistics.median(ingest_rounds)
        backlog = sum(ingest_rounds) * args.seconds / args.rounds
        import_began = time.monotonic()
        await wait_imported(bot_url, bot_sender)
        import_s = time.monotonic() - import_began
        # (b) the same while the worker acknowledges the backlog's jobs against the fake, on the
        # same 2 cores; then the 202's latency, still with the worker at work.
        bot_rps = await closed_loop(bot_sender, args.seconds / args.rounds, args.concurrency)
        latencies = await open_loop(bot_sender, args.rate, args.seconds)
        bare_latencies = await open_loop(bare_sender, args.rate, args.seconds)
        ms = [v * 1000 for v in latencies]
        bare_ms = [v * 1000 for v in bare_latencies]
        table = table_results(bare_rounds, ingest_rounds, table_rounds, await open_loop(table_sender, args.rate, args.seconds)) \
            if table_sender else None
        if table:
            rows, commits = (after - before for after, before in zip(database.counts(), table_before))
            table.update(rows_stored=rows, deliveries_per_commit=round(rows / max(commits, 1), 1))
        return {
            "client": CLIENT if CLIENT == "python" or shutil.which("wrk") else "python",
            "label": args.label,
            "deliveries_per_s_bare_aiohttp": round(bare_rps),
            "ingest_per_s_worker_paused": round(ingest_rps),
            "ingest_ratio": round(ingest_rps / bare_rps, 2),
            "rounds_bare": [round(v) for v in bare_rounds],
            "rounds_ingest": [round(v) for v in ingest_rounds],
            "backlog_deliveries": round(backlog),
            "backlog_imported_in_s": round(import_s, 1),
            "ingest_per_s_worker_acknowledging": round(bot_rps),
            "ratio_worker_acknowledging": round(bot_rps / bare_rps, 2),
            "open_loop_rate": args.rate,
            "p50_ms": round(pct(ms, 50), 2),
            "p99_ms": round(pct(ms, 99), 2),
            "max_ms": round(max(ms), 2),
            "bare_p50_ms": round(pct(bare_ms, 50), 2),
            "bare_p99_ms": round(pct(bare_ms, 99), 2),
            "ack_first_ms": round(cold * 1000, 1),
            "ack_median_ms": round(statistics.median(ack) * 1000, 1),
            "ack_max_ms": round(max(ack) * 1000, 1),
            "statuses": {"agentvine": bot_sender.statuses, "bare": bare_sender.statuses,
                         **({"postgresql": table_sender.statuses} if table_sender else {})},
            **({"postgresql": table} if table else {}),
        }
    finally:
        for proc in reversed(procs):  # AgentVine before the fake it talks to
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if database is not None:
            database.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="closed-loop time per server, split into rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--acks", type=int, default=20)
    parser.add_argument("--label", default="agentvine:bugfix", help="'bug' measures ingestion alone (no job starts)")
    parser.add_argument("--quick", action="store_true", help="short run, for a smoke test")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite",
                        help="postgresql: also measure a web instance that writes the PostgreSQL inbox table")
    parser.add_argument("--database-url", help="--store postgresql: this database (default: a private server)")
    parser.add_argument("--durable-commit", action="store_true",
                        help="the private server with fsync and synchronous_commit on (its commits wait for the disk)")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk",
                        help="closed-loop load generator (python: aiohttp, which caps the bare ceiling)")
    args = parser.parse_args()
    global CLIENT
    CLIENT = args.client
    if args.quick:
        args.seconds, args.rounds, args.acks = 2, 1, 5
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
