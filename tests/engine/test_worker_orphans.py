"""The worker's start-up sweep removes containers its own store's jobs left behind, and nothing else on
the Docker host: another instance's, or one started while it looks."""

from __future__ import annotations

import uuid

import pytest

import app.engine.worker
from app.agent.sandbox.layout import LABEL, LABEL_JOB
from app.assembly import build_worker
from app.domain.job import Delivery, Job, JobState, Trigger
from app.domain.lease import LABEL_EPOCH, LABEL_HOLDER
from app.store.base import StageClaim
from tests.support.env import make_settings

pytestmark = pytest.mark.docker


def test_the_start_up_sweep_removes_only_its_own_stores_containers(tmp_path, docker_client, sandbox_image,
                                                                  app_private_key, monkeypatch):
    worker = build_worker(make_settings(tmp_path, private_key=app_private_key))
    mine = Job(delivery_id="d1", installation_id=1, repo="o/r", issue_number=3, requester="alice",
               trigger=Trigger(kind="label", label="agentvine:bugfix"))
    worker.store.record_delivery(Delivery(id="d1", event="issues"), [mine])
    started = []

    def run(job: str) -> None:
        started.append(docker_client.containers.run(sandbox_image, ["sleep", "300"], detach=True,
                                                    network_mode="none", labels={LABEL: "1", LABEL_JOB: job}))

    real = app.engine.worker.remove_orphans

    def another_instance_starts_one_meanwhile(*args, **kwargs):
        run(f"another-instance-{uuid.uuid4().hex[:10]}")  # between the worker's look and the sweep's
        return real(*args, **kwargs)

    monkeypatch.setattr(app.engine.worker, "remove_orphans", another_instance_starts_one_meanwhile)
    try:
        run(mine.id)
        worker._remove_orphan_containers()
        assert docker_client.containers.list(all=True, ignore_removed=True,
                                             filters={"label": f"{LABEL_JOB}={mine.id}"}) == []
        assert docker_client.containers.get(started[1].id).status in ("running", "created")
    finally:
        for container in started:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001  (the sweep removed it)
                pass
        worker.store.close()


async def test_a_worker_started_again_removes_at_once_the_containers_its_predecessor_left(
        tmp_path, docker_client, sandbox_image, app_private_key):
    """The process before this one on the machine died holding a job's lease (still live by the clock):
    its container is an orphan now, and the start-up sweep must not wait a lease's length to see it."""
    worker = build_worker(make_settings(tmp_path, private_key=app_private_key))
    job = Job(delivery_id="d1", installation_id=1, repo="o/r", issue_number=3, requester="alice",
              trigger=Trigger(kind="label", label="agentvine:bugfix"), state=JobState.WAITING_FOR_APPROVAL)
    worker.store.record_delivery(Delivery(id="d1", event="issues"), [job])  # a state no stage takes
    predecessor = f"{worker.dispatcher.identity.name}:1:dead"
    (claimed,) = worker.store.claim_jobs(StageClaim("run", JobState.WAITING_FOR_APPROVAL), predecessor,
                                         worker.dispatcher.identity.name, limit=1, lease_s=300)
    left = docker_client.containers.run(
        sandbox_image, ["sleep", "300"], detach=True, network_mode="none",
        labels={LABEL: "1", LABEL_JOB: job.id, LABEL_HOLDER: predecessor, LABEL_EPOCH: str(claimed.epoch)})
    try:
        await worker.start()
        try:
            assert docker_client.containers.list(all=True, ignore_removed=True,
                                                 filters={"label": f"{LABEL_JOB}={job.id}"}) == []
        finally:
            await worker.stop()
    finally:
        try:
            left.remove(force=True)
        except Exception:  # noqa: BLE001  (the sweep removed it)
            pass
        worker.store.close()
