"""The worker: GitHub clients, the dispatcher and the job stages. Runs next to the web app in
one process (tests, demo) or in a process of its own (`agentvine serve`)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path

from app.domain.config import BotConfig
from app.engine.dispatcher import Dispatcher, Hooks, Limits, Stage
from app.agent.egress import EgressProxy
from app.engine.queue import QueueWatch
from app.agent.gateway import ModelGateway
from app.github.client import GitHubClients
from app.intake.ingest import make_importer
from app.domain.intents import Command, JobCommand
from app.domain.job import Job, JobState
from app.pipeline.acknowledge import acknowledge
from app.pipeline.commands import CommandHandler
from app.pipeline.context import JobContext, step_permissions
from app.pipeline.failure import fail_job
from app.pipeline.followups import release_follow_ups
from app.pipeline.progress import ProgressReporter
from app.pipeline.questions import expiry_request, question_expired
from app.pipeline.run import RunDeps, run_job
from app.agent.sandbox import remove_orphans
from app.agent.sandbox.disk import JobDisk, choose_mode
from app.agent.sandbox.layout import LABEL_JOB
from app.domain.lease import LABEL_EPOCH, LABEL_HOLDER
from app.engine.leases import WorkerIdentity
from app.pipeline.present import texts
from app.settings import Settings
from app.store.base import JobStore
from app.agent.boundary.hostgit import GitError, GitUser
from app.agent.boundary.workspace import discard

log = logging.getLogger(__name__)

ACK_CONCURRENCY = 16  # acknowledgements are a handful of API calls each


class Worker:
    def __init__(self, settings: Settings, store: JobStore, config: BotConfig, *, poll_interval: float = 2.0) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.clients: GitHubClients | None = None
        self.run_deps = RunDeps(gateway=None, progress_interval=settings.progress_interval)
        self._housekeeper: asyncio.Task[None] | None = None
        identity = WorkerIdentity.new(settings.worker_name, settings.lease_seconds)
        # The file inbox beside the web process, or (PostgreSQL) the inbox table every web instance writes.
        self.importer = make_importer(store, settings.inbox_path, holder=identity.holder,
                                      command_prefix=config.command_prefix, label_prefix=config.label_prefix)
        self.dispatcher = Dispatcher(
            store,
            [
                Stage("acknowledge", JobState.QUEUED, self._acknowledge, Limits(total=ACK_CONCURRENCY)),
                Stage(
                    "run",
                    JobState.ACKNOWLEDGED,
                    self._run,
                    Limits(
                        total=settings.max_concurrent_jobs,
                        per_installation=settings.max_jobs_per_installation,
                        per_repo=settings.max_jobs_per_repo,
                    ),
                ),
            ],
            Hooks(intake=self.importer.import_new, on_command=self._command, on_error=self._failed,
                  before_start=self._before_start, on_interrupted=self._interrupted),
            poll_interval=poll_interval,
            # A run that a restart interrupted, or a dead worker left, starts again from the default branch.
            interrupted_states={JobState.RUNNING: JobState.ACKNOWLEDGED},
            identity=identity,
        )
        self.queue = QueueWatch(self.dispatcher, store, self._redraw, interval=settings.progress_interval)
        self.commands = CommandHandler(self.context, store, config, cancel_running=self._cancel_running)
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        app_id, pem = self.settings.app_credentials()
        self.clients = GitHubClients(app_id=app_id, private_key_pem=pem, base_url=self.settings.github_api_url)
        if self.settings.anthropic_api_key is not None:
            self.run_deps.gateway = ModelGateway(
                self.settings.model_api_url,
                self.settings.anthropic_api_key.get_secret_value(),
                # Short: a Unix socket's path may have at most 107 bytes.
                socket_dir=Path(tempfile.mkdtemp(prefix="agentvine-gw-")),
            )
        self.run_deps.egress = EgressProxy(Path(tempfile.mkdtemp(prefix="agentvine-eg-")))
        self.dispatcher.expire_predecessors()  # before the janitor: the last process's containers are orphans
        await asyncio.to_thread(self._remove_orphan_containers)
        await asyncio.to_thread(self._check_job_files)
        await asyncio.to_thread(self._tidy_job_files)
        await self.dispatcher.start()
        self.queue.start()
        self._housekeeper = asyncio.create_task(self._housekeeping())
        # Work another process made (a web instance's delivery, a cancel through another worker) wakes us.
        self._watcher = asyncio.create_task(self.store.watch(self.dispatcher.wake), name="store-watch")

    async def stop(self) -> None:
        tasks = [task for task in (self._housekeeper, self._watcher) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # the LISTEN connection goes back before the pool closes
        await self.queue.stop()
        await self.dispatcher.stop()
        if self.run_deps.gateway is not None:
            await self.run_deps.gateway.close()
        if self.run_deps.egress is not None:
            await self.run_deps.egress.close()
            shutil.rmtree(self.run_deps.egress.socket_dir, ignore_errors=True)
        if self.run_deps.docker_client is not None:
            await asyncio.to_thread(self.run_deps.docker_client.close)
        if self.clients is not None:
            await self.clients.close()

    def _remove_orphan_containers(self) -> None:
        """The janitor of this machine's engine: containers of this store's jobs that no live lease runs
        (their worker died, or lost the job to another). The Docker client made here at start serves
        every job after (one client, not one per run)."""
        client = self.run_deps.docker_client
        if client is None:
            try:
                import docker

                client = docker.from_env(timeout=120)
                client.ping()
            except Exception as exc:  # no Docker here: nothing can be orphaned; runs will say so
                log.info("orphan check skipped: %s", exc)
                return
            self.run_deps.docker_client = client
        removed = remove_orphans(client, keep_if=self._container_is_live)
        if removed:
            log.warning("removed containers no live worker runs: %s", ", ".join(removed))

    def _container_is_live(self, labels: dict[str, str]) -> bool:
        """Whether a job container (by its labels) belongs to work under way, here or by a live worker.
        Another store's jobs (another instance on this engine) are not ours to judge: kept."""
        job_id = labels.get(LABEL_JOB, "")
        if self.dispatcher.is_active(job_id) or self.store.get_job(job_id) is None:
            return True
        lease = self.store.lease_of(job_id)
        return lease is not None and lease == (labels.get(LABEL_HOLDER), _int(labels.get(LABEL_EPOCH)))

    def _cancel_running(self, job_id: str) -> bool:
        """Stop the job's work: here, and through the store, where it stays asked for until the run
        stage acts on it (the worker holding the job hears it; a stage that cannot stop, such as the
        acknowledgement, hands it on; a takeover keeps it). False when no stage anywhere holds the job."""
        here = self.dispatcher.cancel(job_id)
        return self.store.request_cancel(job_id) or here

    def _interrupted(self, job: Job, back_to: JobState, previous_holder: str | None) -> Job:
        note = texts.INTERRUPTED_RESTART if previous_holder is None or previous_holder.startswith(
            self.dispatcher.identity.name + ":") else texts.INTERRUPTED_TAKEN_OVER
        return job.moved_to(back_to, job.reason).model_copy(update={"interruption": note})

    def _check_job_files(self) -> None:
        """At start: host git must reach the job folders, and the operator hears when there is no quota."""
        jobs_dir = self.settings.jobs_dir
        jobs_dir.mkdir(parents=True, exist_ok=True)
        try:
            GitUser.parse(self.settings.git_user).check_reachable(jobs_dir)
        except GitError as exc:
            log.error("no job can run: %s", exc)
        if choose_mode(self.settings.workspace_disk) == "dir":
            log.warning("workspace quotas are not enforced: loop devices need root and /dev/loop-control "
                        "(AGENTVINE_WORKSPACE_DISK, docs/sandbox.md)")

    def _tidy_job_files(self, *, at_start: bool = True) -> None:
        """The janitor: files of ended jobs, and of jobs the store does not know, are removed. At start
        (nothing runs yet) no job filesystem stays mounted either: a job waiting for an answer mounts its
        own again when it resumes. Later (every housekeeping round) it leaves alone what a stage is using."""
        jobs_dir = self.settings.jobs_dir
        mode = choose_mode(self.settings.workspace_disk)
        for root in sorted(jobs_dir.iterdir()) if jobs_dir.is_dir() else []:
            if not at_start and self.dispatcher.is_active(root.name):
                continue  # its stage removes or keeps its files when it ends
            job = self.store.get_job(root.name)
            disk = JobDisk(root, mode, max_size_mb=0, max_files=0)
            try:
                if job is None or job.terminal:
                    discard(disk)
                    if not at_start:
                        log.warning("removed the files job %s left behind", root.name)
                elif at_start:
                    disk.unmount()
            except Exception:
                log.exception("could not tidy the files of job %s", root.name)

    def context(self, job: Job, step: str = "command") -> JobContext:
        """The job's context for `step`, whose GitHub token reaches only the job's repository."""
        assert self.clients is not None, "the worker is not started"
        return JobContext(
            job=job,
            api=self.clients.for_repository(job.installation_id, job.name, step_permissions(job, step)),
            store=self.store,
            settings=self.settings,
            service_config=self.config,
            queue=self.queue,
        )

    async def _acknowledge(self, job: Job, _cancel: asyncio.Event) -> None:
        await acknowledge(self.context(job, "acknowledge"))

    async def _run(self, job: Job, cancel: asyncio.Event) -> None:
        await self.queue.settled(job.id)  # a queue edit still on its way would land over "Working"
        await run_job(self.context(job, "run"), self.run_deps, cancel)

    def _before_start(self) -> None:
        """Each dispatcher pass: follow-ups whose job ahead ended go on, and the queue's display looks again."""
        self.queue.poke(release_follow_ups(self.store))

    async def _redraw(self, job: Job) -> None:
        await ProgressReporter.redraw(self.context(job))

    async def _failed(self, job: Job, exc: BaseException) -> None:
        await fail_job(self.context(job), exc)

    async def _command(self, command: JobCommand) -> str:
        return await self.commands.handle(command)

    async def _housekeeping(self) -> None:
        """Every minute: ends jobs whose question went unanswered too long, removes files no job needs
        any more, and forgets old deliveries and carried-out commands. A pass that fails (the database
        away) is tried again the next minute: the loop must outlive it."""
        while True:
            await asyncio.sleep(self.settings.expiry_check_interval)
            try:
                await self._tidy()
            except Exception:  # noqa: BLE001
                log.exception("housekeeping failed; again in %.0f s", self.settings.expiry_check_interval)

    async def _tidy(self) -> None:
        now = time.time()
        self.store.prune(now - self.settings.retention_days * 86400)
        await asyncio.to_thread(self._tidy_job_files, at_start=False)
        await asyncio.to_thread(self._remove_orphan_containers)
        expired = [job for job in self.store.list_jobs([JobState.WAITING_FOR_ANSWER])
                   if question_expired(job, self.config, now)]
        # One not yet carried out (behind a long command of the issue's) stands for this minute's as well.
        pending = {command.job_id for _, command in self.store.pending_commands()
                   if command.name is Command.EXPIRE_QUESTION} if expired else set()
        for job in expired:
            if job.id not in pending:
                delivery, command = expiry_request(job, now)
                self.store.record_delivery(delivery, commands=[command])  # another worker's this minute: stored once
        if expired:
            self.dispatcher.wake()


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
