"""Finding and removing sandbox containers that no running job owns (what a crash left behind).

Every container the runner creates carries the labels of layout.py; at start-up the service
removes those whose job is not really running. Apart from runner.py because it runs once per
start, not once per job, and needs nothing of a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .container import connect_docker, import_docker
from .layout import LABEL, LABEL_JOB

__all__ = ["remove_orphans"]

log = logging.getLogger(__name__)


def remove_orphans(client=None, *, keep: set[str] | frozenset[str] = frozenset(),
                   also_labelled: str | None = None, only: set[str] | frozenset[str] | None = None,
                   keep_if: Callable[[dict[str, str]], bool] | None = None) -> list[str]:
    """Remove every container labelled ``agentvine=1`` (and ``also_labelled``, ``key=value``, when
    given: only those of one owner) whose job is not in ``keep`` (and is in ``only``, when given:
    a container that appears meanwhile for a job nobody named is left alone), and for which
    ``keep_if(labels)``, when given, is false: asked of each container as it comes, so one made
    after the listing began is judged by what is true then.

    Returns the job ids whose containers were removed.
    """
    docker = import_docker()
    own = client is None
    client = client or connect_docker()
    removed: list[str] = []
    try:
        labels = [f"{LABEL}=1"] + ([also_labelled] if also_labelled else [])
        for c in client.containers.list(all=True, ignore_removed=True, filters={"label": labels}):
            job = c.labels.get(LABEL_JOB, "")
            if job in keep or (only is not None and job not in only) or (keep_if is not None and keep_if(c.labels)):
                continue
            try:
                c.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            log.warning("removed orphan sandbox container %s (job %s)", c.name, job)
            removed.append(job)
    finally:
        if own:
            client.close()
    return removed
