"""What `agentvine replay --embedded` must arrange on the embedded GitHub before it delivers a saved
payload: the installation, the repository, the sender, the issue or pull request and the comment the
payload speaks of. Read from the payload (which may be anything) into typed models; what is missing
or unusable is named, all of it at once (SceneError)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# The payload's names become paths and git refs in the embedded GitHub: only what GitHub itself allows.
LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\[bot\])?")
REPO_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
BRANCH = re.compile(r"(?!-)(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<!/)(?<!\.lock)")

# What each part is for, said when it is missing.
WHY = {
    "installation": "the App installation the delivery is for; GitHub sends it with every delivery to an App",
    "repository": "the repository the event happened in",
    "sender": "who caused the event, whose permission AgentVine checks",
}
SCENE_ERROR = "the embedded GitHub cannot be arranged from this payload:\n{problems}"


class SceneError(ValueError):
    """The payload lacks what the embedded GitHub needs; the message lists each part and why."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Account(_Loose):
    login: str
    type: str = "User"

    @field_validator("login")
    @classmethod
    def _login(cls, value: str) -> str:
        if not LOGIN.fullmatch(value):
            raise ValueError("is not a GitHub login (letters, digits and -)")
        return value


class Repository(_Loose):
    full_name: str
    owner: Account | None = None
    default_branch: str = "main"
    private: bool = False

    @field_validator("full_name")
    @classmethod
    def _owner_and_name(cls, value: str) -> str:
        owner, _, name = value.partition("/")
        if not LOGIN.fullmatch(owner) or not REPO_NAME.fullmatch(name) or name in (".", ".."):
            raise ValueError("must be owner/name as GitHub spells them")
        return value

    @field_validator("default_branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        return _branch_name(value)

    @property
    def owner_login(self) -> str:
        return self.owner.login if self.owner else self.full_name.partition("/")[0]


class Installation(_Loose):
    id: int = Field(ge=1)


class Label(_Loose):
    name: str = Field(min_length=1, max_length=100)


class Ref(_Loose):
    ref: str

    @field_validator("ref")
    @classmethod
    def _branch(cls, value: str) -> str:
        return _branch_name(value)


class Item(_Loose):
    """The issue or pull request: what the payload says of it."""

    number: int = Field(ge=1, le=10_000_000)
    title: str = ""
    body: str | None = None
    labels: list[Label] = Field(default_factory=list)
    user: Account | None = None
    pull_request: dict[str, Any] | None = None  # an issue that is a pull request carries this
    head: Ref | None = None
    base: Ref | None = None
    draft: bool = False

    @property
    def author(self) -> str:
        return self.user.login if self.user else "octocat"


class Comment(_Loose):
    id: int = Field(ge=1)
    body: str | None = None
    user: Account | None = None


class Scene(_Loose):
    installation: Installation
    repository: Repository
    sender: Account
    issue: Item | None = None
    pull_request: Item | None = None
    comment: Comment | None = None
    label: Label | None = None

    @property
    def item(self) -> Item | None:
        """The issue or pull request the event is about (a pull request event names it `pull_request`)."""
        return self.pull_request or self.issue

    @property
    def is_pull(self) -> bool:
        return self.pull_request is not None or (self.issue is not None and self.issue.pull_request is not None)

    @property
    def label_names(self) -> list[str]:
        """The item's labels and the one just added (GitHub's payload already lists it; a hand-made one may not)."""
        names = [label.name for label in self.item.labels] if self.item else []
        if self.label and self.label.name not in names:
            names.append(self.label.name)
        return names


def _branch_name(value: str) -> str:
    if not BRANCH.fullmatch(value):
        raise ValueError("is not a branch name git takes")
    return value


def _problem(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    top = str(error["loc"][0]) if error["loc"] else ""
    why = f" ({WHY[top]})" if top in WHY and len(error["loc"]) <= 2 and error["type"] == "missing" else ""
    what = "missing" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
    return f"  - {where}: {what}{why}"


def scene_from_payload(payload: dict[str, Any]) -> Scene:
    """The parts of `payload` the embedded GitHub is arranged from; SceneError names each one missing or unusable."""
    try:
        return Scene.model_validate(payload)
    except ValidationError as exc:
        problems = "\n".join(_problem(error) for error in exc.errors())
        raise SceneError(SCENE_ERROR.format(problems=problems)) from None
