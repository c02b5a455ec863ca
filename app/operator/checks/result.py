"""A check's outcome, and what the checks hand on to one another."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from app.domain.config import BotConfig
from app.settings import Settings

DEFAULT_TIMEOUT_S = 10.0  # per check: long enough for a loaded machine, short enough to wait for


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # passes, with something to watch (the exit code stays 0)
    FAILED = "failed"
    SKIPPED = "skipped"  # could not run because a check it needs failed (counts as not passed)


class CheckResult(BaseModel):
    """One line of the report: what was checked, what was found, and how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in (Status.OK, Status.WARN)


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name=name, status=Status.OK, detail=detail)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name=name, status=Status.WARN, detail=detail, fix=fix)


def failed(name: str, detail: str, fix: str | None = None) -> CheckResult:
    return CheckResult(name=name, status=Status.FAILED, detail=detail, fix=fix)


def skipped(name: str, because: str) -> CheckResult:
    return CheckResult(name=name, status=Status.SKIPPED, detail=f"not checked: {because}")


@dataclass
class Context:
    """Filled in as the checks pass: later checks use what earlier ones found, or are skipped."""

    environ: dict[str, str]
    timeout: float = DEFAULT_TIMEOUT_S
    settings: Settings | None = None
    private_key_pem: str | None = None  # set once the key is known to be a usable PEM RSA key
    config: BotConfig | None = None
    docker: Any = None  # a docker.DockerClient once the engine answers
    image_present: bool = False

    def close(self) -> None:
        if self.docker is not None:
            self.docker.close()
