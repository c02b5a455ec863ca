"""Admission: the repository's config, the worker the trigger asks for, and the sender's right."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from app.pipeline.present import texts
from app.domain.config import (
    MAX_REPO_CONFIG_BYTES,
    REPO_CONFIG_PATH,
    BotConfig,
    Ceilings,
    ConfigError,
    LabelRule,
    merge_repo_config,
    permission_at_least,
)
from app.github.ops import RepoOps
from app.domain.job import Job


async def load_repo_config(github: RepoOps, job: Job, defaults: BotConfig, ceilings: Ceilings) -> BotConfig:
    """The repository's config merged over the defaults; raises ConfigError for a bad file, or for
    one that asks for more than the operator's `ceilings` allow."""
    item = await github.file(REPO_CONFIG_PATH, job.default_branch)
    if item is None:
        return defaults
    if not isinstance(item, dict) or item.get("type") != "file":
        raise ConfigError(REPO_CONFIG_PATH, ["is not a file"])
    if int(item.get("size") or 0) > MAX_REPO_CONFIG_BYTES:
        raise ConfigError(REPO_CONFIG_PATH, [f"file is larger than {MAX_REPO_CONFIG_BYTES // 1024} KiB"])
    try:
        text = base64.b64decode(item.get("content") or "").decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigError(REPO_CONFIG_PATH, ["is not UTF-8 text"]) from None
    return merge_repo_config(text, ceilings=ceilings)


def resolve_rule(job: Job, config: BotConfig) -> LabelRule | None:
    """Worker type and level the trigger asks for; None for a label the config does not map."""
    if job.trigger.kind == "label":
        return config.labels.get(job.trigger.label or "")
    if job.trigger.ci is not None and job.trigger.worker:  # a CI follow-up keeps the level of the job it follows
        return LabelRule.model_validate({"worker": job.trigger.worker, "level": job.trigger.ci.level})
    if job.trigger.worker:  # e.g. `review`: the level its label has, else the commands' level
        level = next((r.level for r in config.labels.values() if r.worker == job.trigger.worker), config.commands.level)
        return LabelRule(worker=job.trigger.worker, level=level)
    return LabelRule(worker=config.commands.worker, level=config.commands.level)


def resolve_model(job: Job, config: BotConfig, worker: str) -> str:
    for label in (job.trigger.label, *job.labels):
        if label in config.seniority:
            return config.seniority[label].model
    return config.workers[worker].model  # type: ignore[index]


def reviews_pushes(job: Job, config: BotConfig) -> bool:
    """Whether a push to the job's pull request is reviewed: `review.on_push`, or the review label on it."""
    if config.review.on_push:
        return True
    return any((rule := config.labels.get(label)) is not None and rule.worker == "review" for label in job.labels)


@dataclass
class Admission:
    config: BotConfig | None = None
    config_error: ConfigError | None = None
    rule: LabelRule | None = None
    permission: str = "none"
    required: str = "write"
    skip: str | None = None  # why the job ends here without a word on GitHub (a push nobody asked to review)

    @property
    def authorized(self) -> bool:
        return permission_at_least(self.permission, self.required)


async def admit(github: RepoOps, job: Job, defaults: BotConfig, ceilings: Ceilings) -> Admission:
    admission = Admission()
    try:
        admission.config = await load_repo_config(github, job, defaults, ceilings)
    except ConfigError as exc:
        admission.config_error = exc
    effective = admission.config or defaults  # a broken file still needs someone allowed to hear about it
    admission.rule = resolve_rule(job, effective)
    if admission.rule is None and admission.config is not None:
        return admission  # an unmapped label: no API call spent on permission
    if job.trigger.kind == "push" and not reviews_pushes(job, effective):
        admission.skip = texts.PUSH_NOT_REVIEWED
        return admission
    admission.required = effective.permissions.trigger
    admission.permission = await github.permission(job.requester)
    return admission


def unauthorized_text(job: Job, admission: Admission) -> str:
    return texts.UNAUTHORIZED.format(sender=job.requester, required=admission.required, actual=admission.permission)
