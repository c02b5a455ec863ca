"""What AgentVine counts, for `GET /metrics` (Prometheus' text format; docs/metrics.md lists every metric).

The lowest layer of all (tests/test_layout.py): the webhook, the inbox's import, the GitHub client,
the gateway, the sandbox, the pipeline and the engine record here without importing one another, and
this module imports nothing of the app. Each site records with one call to one of the functions
below; the metric objects stay in here.

Labels are low-cardinality by construction: states, stages, workers, outcomes and route templates
come from the code. Values that come from outside (an event name, a model name, an installation id)
pass through `_Bounded`, which folds anything past a fixed number of distinct values into `other`.

One process (tests, the demo, `serve --single-process`) keeps its figures in memory. `agentvine
serve` runs a web process and a worker process: `use_directory` switches to prometheus-client's
multiprocess mode, where every process writes its figures to files in one folder and the web
process adds them up when scraped."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client import multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name; a spawned worker inherits it
# The classic text format every Prometheus reads (prometheus-client's newer default says 1.0.0; with
# names like ours the body is the same).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"  # a label value past its bound
NONE = "none"  # a label not known (yet): a job before its worker is decided, a call made with no token

# Seconds. A job spans its whole life (it may wait hours for an answer); a run's overhead is ~1 s.
JOB_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 4 * 3600, 24 * 3600)
OVERHEAD_BUCKETS = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)


class _Bounded:
    """At most `limit` distinct values of a label that comes from outside; later ones are `other`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: object) -> str:
        text = NONE if value is None else str(value)[:100]
        if text in self._seen:
            return text
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(text)
        return text


class _Metrics:
    """Every metric, built anew when the process switches to multiprocess mode."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhook = Counter("agentvine_webhook_deliveries", "Deliveries POST /webhooks answered, by event and "
                               "outcome (the answer)", ["event", "outcome"], registry=r)
        self.imported = Counter("agentvine_deliveries_imported", "Deliveries the worker took from the inbox into the "
                                "store, by event and what they asked for", ["event", "outcome"], registry=r)
        self.transitions = Counter("agentvine_job_transitions", "Jobs that entered a state (the pipeline's moves), "
                                   "by worker and state", ["worker", "state"], registry=r)
        self.finished = Counter("agentvine_jobs_finished", "Jobs that ended, by worker, terminal state and "
                                "check-run conclusion", ["worker", "state", "conclusion"], registry=r)
        self.job_seconds = Histogram("agentvine_job_duration_seconds", "A job's life, from its delivery to its "
                                     "terminal state, by worker and state", ["worker", "state"],
                                     buckets=JOB_BUCKETS, registry=r)
        self.overhead = Histogram("agentvine_run_overhead_seconds", "An agent run's wall time minus the time spent "
                                  "waiting on the model API, by worker", ["worker"], buckets=OVERHEAD_BUCKETS,
                                  registry=r)
        self.queue = Gauge("agentvine_queue_depth", "Jobs waiting for a stage of the dispatcher (in its input state, "
                           "not yet started), by stage", ["stage"], multiprocess_mode="livemostrecent", registry=r)
        self.sandboxes = Gauge("agentvine_sandboxes_running", "Sandbox containers running now",
                               multiprocess_mode="livesum", registry=r)
        self.github = Counter("agentvine_github_requests", "HTTP requests sent to GitHub's REST API (retries "
                              "included), by operation (method and route template) and status", ["operation", "status"],
                              registry=r)
        self.rate_limit = Gauge("agentvine_github_rate_limit_remaining", "GitHub's x-ratelimit-remaining in its latest "
                                "answer, by installation (`app`: the App's own JWT)", ["installation"],
                                multiprocess_mode="mostrecent", registry=r)
        self.tokens = Counter("agentvine_model_tokens", "Tokens the model API reported through the gateway, by model "
                              "and kind", ["model", "kind"], registry=r)
        self.cost = Counter("agentvine_model_cost_usd", "Estimated cost of those tokens in US dollars "
                            "(app/agent/policy.py PRICES), by model", ["model"], registry=r)
        self.restarts = Counter("agentvine_worker_restarts", "Worker processes restarted after they died", registry=r)
        self.leases_lost = Counter("agentvine_leases_lost", "Job leases this worker lost (another worker may have "
                                   "taken the job over), by stage", ["stage"], registry=r)
        self.taken_over = Counter("agentvine_jobs_taken_over", "Jobs a worker took over after the lease of the "
                                  "worker running them ran out, by stage", ["stage"], registry=r)
        self.events, self.models, self.installations = _Bounded(100), _Bounded(50), _Bounded(2000)
        self.operations = _Bounded(200)  # route templates are the code's, but a caller could pass a full path
        self.children: dict[tuple[Any, ...], Any] = {}
        # The webhook's answers, counted in a plain dictionary and handed to `webhook` when scraped: a
        # dictionary update costs the 202 ~0.2 µs where prometheus-client's increment costs ~0.7 µs, and
        # ~1.6 µs in multiprocess mode (a locked write to a memory-mapped file). The web process, which
        # records them, is the one that answers GET /metrics. At most one key per event name GitHub sends.
        self.webhook_tally: dict[tuple[str | None, str], int] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: a dictionary look-up instead of labels()' checks and lock."""
        key = (id(metric), *labels)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = metric.labels(*labels)
        return found


_m = _Metrics()
_directory: Path | None = Path(os.environ[MULTIPROC_ENV]) if os.environ.get(MULTIPROC_ENV) else None


def use_directory(path: Path) -> None:
    """Multiprocess mode, for `agentvine serve`: this process and the worker it spawns afterwards (which
    inherits the environment variable) write their figures to files in `path`, emptied here, at the
    service's start, so a restart begins from zero as a single process does."""
    global _m, _directory
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus-client picks its value class when first imported; this process imported it long before.
    values.ValueClass = values.MultiProcessValue()
    _directory = path
    _m = _Metrics()


def exposition(collectors: Iterable[Any] = ()) -> tuple[bytes, str]:
    """The text `GET /metrics` answers, and its content type; `collectors` add figures read when scraped."""
    _flush_tallies()
    registry = CollectorRegistry()
    if _directory is not None:
        multiprocess.MultiProcessCollector(registry, str(_directory))
    else:
        registry.register(_m.registry)
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE


def _flush_tallies() -> None:
    tally, _m.webhook_tally = _m.webhook_tally, {}
    for (event, outcome), count in tally.items():
        _m.child(_m.webhook, _m.events(event), outcome).inc(count)


# --- recording: one call at each site ---------------------------------------------------------------


def webhook_delivery(event: str | None, outcome: str) -> None:
    """`event` only once the delivery is known to be GitHub's (signed, a well-formed name), else None."""
    key = (event, outcome)
    _m.webhook_tally[key] = _m.webhook_tally.get(key, 0) + 1


def delivery_imported(event: str, outcome: str) -> None:
    _m.child(_m.imported, _m.events(event), outcome).inc()


def job_moved(worker: str | None, state: str, ended: bool, conclusion: str | None, age_s: float) -> None:
    """A job entered `state`; `ended`: a terminal one, `age_s` after its delivery."""
    worker = worker or NONE
    _m.transitions.labels(worker, state).inc()
    if ended:
        _m.finished.labels(worker, state, conclusion or NONE).inc()
        _m.job_seconds.labels(worker, state).observe(max(0.0, age_s))


def agent_run(worker: str | None, wall_s: float, model_s: float | None) -> None:
    """A run of the agent ended; `model_s` None when no agent ran (nothing to subtract from)."""
    if model_s is not None:
        _m.overhead.labels(worker or NONE).observe(max(0.0, wall_s - model_s))


def queue_depth(stage: str, waiting: int) -> None:
    _m.child(_m.queue, stage).set(waiting)


@contextlib.contextmanager
def sandbox_running() -> Iterator[None]:
    _m.sandboxes.inc()
    try:
        yield
    finally:
        _m.sandboxes.dec()


def github_request(operation: str, installation: str | int | None, status: int | str, remaining: str | None) -> None:
    """One HTTP request to GitHub and its answer's status (or `error`: no answer); `remaining` is the
    answer's x-ratelimit-remaining header, as GitHub sent it."""
    _m.child(_m.github, _m.operations(operation), str(status)).inc()
    if installation is not None and remaining is not None and remaining.isascii() and remaining.isdigit():
        _m.child(_m.rate_limit, _m.installations(installation)).set(int(remaining))


def model_tokens(model: str, kind: str, tokens: int) -> None:
    _m.child(_m.tokens, _m.models(model), kind).inc(tokens)


def model_cost(model: str, usd: float) -> None:
    if usd > 0:
        _m.child(_m.cost, _m.models(model)).inc(usd)


def lease_lost(stage: str) -> None:
    _m.child(_m.leases_lost, stage).inc()


def job_taken_over(stage: str) -> None:
    _m.child(_m.taken_over, stage).inc()


def worker_replaced(dead_pid: int | None) -> None:
    """The supervisor starts a new worker process: the dead one's live gauges (queue depth, sandboxes
    running) no longer count; its counters stay, as counters must."""
    _m.restarts.inc()
    if _directory is not None and dead_pid is not None:
        multiprocess.mark_process_dead(dead_pid, str(_directory))
