"""The bot configuration: shipped defaults in bot_config/default.yml, deep-merged with a
repository's .github/agentvine.yml, validated into typed models.

Every problem becomes a ConfigError whose lines name the exact key, so people can fix their
file; nothing falls back silently to a default."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from app.domain.egress import Egress, EgressEntry, uncovered
from app.domain.findings import RequestChangesOn
from app.domain.steps import MAX_STEPS, Step, StepsSettings, VerifySettings, expand_verify, setup_shape, step_timeouts

REPO_CONFIG_PATH = ".github/agentvine.yml"
MAX_REPO_CONFIG_BYTES = 64 * 1024
# PyYAML composes nodes recursively: unbounded, a few KiB of `[[[[` end in RecursionError (the config needs 4).
MAX_YAML_DEPTH = 32
# Keys a repository may not set: routing reads them before any repository file is loaded.
SERVICE_ONLY_KEYS = ("command_prefix", "label_prefix")


def _shipped_bot_config_dir() -> Path:
    """bot_config/: package data `app.bot_config` in an installed copy (`pip install .` copies only
    packages; pyproject.toml maps it there), else the one folder people edit at the checkout's top."""
    installed = resources.files("app") / "bot_config"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / "bot_config"


DEFAULT_BOT_CONFIG_DIR = _shipped_bot_config_dir()

Permission = Literal["read", "triage", "write", "maintain", "admin"]
Level = Literal["autonomous", "supervised", "human-required"]
WorkerName = Literal["feature", "bugfix", "test", "docs", "refactor", "review"]
PERMISSION_ORDER: tuple[str, ...] = ("none", "read", "triage", "write", "maintain", "admin")
MemorySize = Annotated[str, Field(pattern=r"^[1-9][0-9]*[kmg]$")]  # Docker's units: 1k = 1024 bytes
# The sandbox images AgentVine builds (app/agent/sandbox/recipe.py, PROFILES), and the name that
# means the operator's own choice (AGENTVINE_SANDBOX_IMAGE).
SANDBOX_PROFILES: tuple[str, ...] = ("base", "full")
OPERATOR_IMAGE = "default"
# A Docker image reference, as `docker pull` takes it: [host[:port]/]path[:tag][@sha256:digest].
_IMAGE_REFERENCE = (r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]{1,5})?/)?"
                    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
                    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")
ImageName = Annotated[str, Field(pattern=_IMAGE_REFERENCE, max_length=255)]
_SHIPPED_PROMPT = re.compile(r"^prompts/[a-z0-9_-]+\.md$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelRule(_Strict):
    worker: WorkerName
    level: Level


class SeniorityRule(_Strict):
    model: Annotated[str, Field(min_length=1, max_length=100)]


class CommandDefaults(_Strict):
    worker: WorkerName
    level: Level


class Permissions(_Strict):
    trigger: Permission
    approve: Permission


class WorkerConfig(_Strict):
    # Either inline template text, or `prompts/<name>.md` shipped in bot_config/.
    prompt: Annotated[str, Field(min_length=1, max_length=20_000)]
    model: Annotated[str, Field(min_length=1, max_length=100)]
    max_turns: Annotated[int, Field(ge=1, le=500)]
    timeout_minutes: Annotated[float, Field(gt=0, le=360)]
    max_cost_usd: Annotated[float, Field(ge=0, le=1000)]
    allowed_tools: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\(.{1,200}\))?$")]]
    allowed_paths: list[Annotated[str, Field(min_length=1, max_length=200)]]


class Questions(_Strict):
    expire_hours: Annotated[float, Field(gt=0, le=24 * 30)]


class SandboxLimits(_Strict):
    memory: MemorySize
    cpus: Annotated[float, Field(gt=0, le=16)]
    pids: Annotated[int, Field(ge=16, le=65536)]
    # `default` (the operator's AGENTVINE_SANDBOX_IMAGE), a profile, or an image the operator allows.
    # A default here too: an operator's own bot config from before the key still validates.
    image: ImageName = OPERATOR_IMAGE


class WorkspaceLimits(_Strict):
    """The agent's files: a quota enforced while it runs, and what one commit may hold."""

    max_size_mb: Annotated[int, Field(ge=64, le=1_000_000)]
    max_files: Annotated[int, Field(ge=100, le=100_000_000)]
    max_file_mb: Annotated[int, Field(ge=1, le=100)]  # GitHub refuses files over 100 MB
    max_changed_files: Annotated[int, Field(ge=1, le=1_000_000)]


class FollowCI(_Strict):
    """CI failing on AgentVine's own pull request starts a follow-up on its branch (app/pipeline/ci_follow.py)."""

    # autonomous: for pull requests of autonomous jobs; always: every level; never: none.
    when: Literal["autonomous", "always", "never"]
    max_rounds: Annotated[int, Field(ge=1, le=10)]  # follow-ups per pull request, at most

    def covers(self, level: str | None) -> bool:
        return self.when == "always" or (self.when == "autonomous" and level == "autonomous")


class ReviewSettings(_Strict):
    """What the `review` worker does beyond its worker settings."""

    on_push: bool  # review each push to a pull request (what is new since the last review)
    request_changes_on: RequestChangesOn  # REQUEST_CHANGES from this severity on; `never`: always COMMENT


class BotConfig(_Strict):
    command_prefix: Annotated[str, Field(pattern=r"^/[a-z0-9-]+$")]
    label_prefix: Annotated[str, Field(min_length=1, max_length=50)]
    permissions: Permissions
    notify_unauthorized: bool
    allow_workflow_changes: bool
    labels: dict[str, LabelRule]
    seniority: dict[str, SeniorityRule]
    commands: CommandDefaults
    workers: dict[WorkerName, WorkerConfig]
    questions: Questions
    sandbox: SandboxLimits
    workspace: WorkspaceLimits
    follow_ci: FollowCI
    review: ReviewSettings
    setup: Annotated[list[Step], Field(max_length=MAX_STEPS), BeforeValidator(setup_shape)]  # app/domain/steps.py
    verify: VerifySettings
    steps: StepsSettings
    egress: Egress = Egress()  # operators' own bot config files from before it still load

    @field_validator("labels", "seniority")
    @classmethod
    def _labels_carry_prefix(cls, labels: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        prefix = info.data.get("label_prefix", "")
        for label in labels:
            if not label.startswith(prefix):
                raise ValueError(f"label {label!r} must start with {prefix!r}")
        return labels

    @field_validator("follow_ci", mode="before")
    @classmethod
    def _follow_ci_shape(cls, value: Any) -> Any:
        if not isinstance(value, (dict, FollowCI)):  # a bool was expanded before the merge
            raise ValueError("must be true, false, or a mapping with `when` and `max_rounds`")
        return value

    @field_validator("workers")
    @classmethod
    def _every_worker(cls, workers: dict[str, WorkerConfig]) -> dict[str, WorkerConfig]:
        missing = sorted(set(WorkerName.__args__) - set(workers))  # type: ignore[attr-defined]
        if missing:
            raise ValueError(f"missing worker types: {', '.join(missing)}")
        return workers

    def prompt_template(self, worker: str) -> str:
        prompt = self.workers[worker].prompt  # type: ignore[index]
        if _SHIPPED_PROMPT.match(prompt):
            return (DEFAULT_BOT_CONFIG_DIR / prompt).read_text()
        return prompt


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` are 'key: message' lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _NoAliasLoader(yaml.SafeLoader):
    """Refuses anchors/aliases (a few hostile lines of them can expand to gigabytes) and nesting
    deeper than MAX_YAML_DEPTH (composing recurses once per level)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(problem="aliases (*name) are not allowed", problem_mark=event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            event = self.peek_event()
            raise yaml.MarkedYAMLError(problem=f"nested more than {MAX_YAML_DEPTH} levels deep",
                                       problem_mark=event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    if len(text.encode()) > MAX_REPO_CONFIG_BYTES:
        raise ConfigError(source, [f"file is larger than {MAX_REPO_CONFIG_BYTES // 1024} KiB"])
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"the top level must be a mapping, not {type(data).__name__}"])
    return data


def expand_shorthands(override: dict[str, Any]) -> dict[str, Any]:
    """`follow_ci: true` (false) stands for `follow_ci: {when: always}` (never): the other keys keep
    their defaults, which a scalar would otherwise replace in the merge."""
    if isinstance(override.get("follow_ci"), bool):
        override = {**override, "follow_ci": {"when": "always" if override["follow_ci"] else "never"}}
    return expand_verify(override)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value replaces; `null` removes a key."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate(data: dict[str, Any], source: str) -> BotConfig:
    try:
        return BotConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problems.append(f"{key}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError(source, problems) from None


@cache
def _default_data(path: Path) -> dict[str, Any]:
    return parse_yaml(path.read_text(), str(path))


def load_default(path: Path | None = None, ceilings: Ceilings | None = None) -> BotConfig:
    """The service's defaults; with `ceilings`, a ConfigError too when they are beyond one (start-up)."""
    path = path or DEFAULT_BOT_CONFIG_DIR / "default.yml"
    config = validate(_default_data(path), str(path))
    return ceilings.enforce(config, str(path)) if ceilings is not None else config


def merge_repo_config(text: str, default_path: Path | None = None, ceilings: Ceilings | None = None) -> BotConfig:
    """The configuration for a repository whose .github/agentvine.yml holds `text`, within
    `ceilings` (the operator's, from the settings; the default ceilings when not given)."""
    path = default_path or DEFAULT_BOT_CONFIG_DIR / "default.yml"
    override = parse_yaml(text, REPO_CONFIG_PATH)
    forbidden = [key for key in SERVICE_ONLY_KEYS if key in override]
    if forbidden:
        raise ConfigError(REPO_CONFIG_PATH, [f"{key}: can only be set by the AgentVine service" for key in forbidden])
    config = validate(deep_merge(_default_data(path), expand_shorthands(override)), REPO_CONFIG_PATH)
    return (ceilings or Ceilings()).enforce(config, REPO_CONFIG_PATH)


def permission_at_least(actual: str | None, required: str) -> bool:
    actual = actual if actual in PERMISSION_ORDER else "none"
    return PERMISSION_ORDER.index(actual) >= PERMISSION_ORDER.index(required)


_MEMORY_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(size: str) -> int:
    return int(size[:-1]) * _MEMORY_UNITS[size[-1]]


class Ceilings(_Strict):
    """The operator's bounds on every repository's config: a repository may narrow any limit, never
    widen one past these. Each field is the setting AGENTVINE_<FIELD> (app/settings.py reads them);
    the shipped bot_config/default.yml fits within the defaults. A value beyond one is a ConfigError
    naming both, never clamped: people should know the limit their file asked for does not hold."""

    min_trigger_permission: Permission = "write"
    min_approve_permission: Permission = "write"
    max_memory: MemorySize = "4g"
    max_cpus: Annotated[float, Field(gt=0)] = 2.0
    max_pids: Annotated[int, Field(ge=16)] = 1024
    max_minutes: Annotated[float, Field(gt=0)] = 60.0
    max_turns: Annotated[int, Field(ge=1)] = 100
    max_cost_usd: Annotated[float, Field(ge=0)] = 10.0
    # Model names, or fnmatch patterns such as `claude-sonnet-*`.
    allowed_models: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)] = (
        "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
    # Images a repository may name as `sandbox.image` besides the profiles: references or fnmatch
    # patterns (`registry.example.com/team/*`). None by default: each is the operator's to allow.
    allowed_images: tuple[Annotated[str, Field(min_length=1, max_length=255)], ...] = ()
    max_question_hours: Annotated[float, Field(gt=0)] = 168.0
    max_workspace_mb: Annotated[int, Field(ge=64)] = 8192
    max_workspace_files: Annotated[int, Field(ge=100)] = 200_000
    max_file_mb: Annotated[int, Field(ge=1)] = 100
    max_changed_files: Annotated[int, Field(ge=1)] = 5000
    max_step_minutes: Annotated[float, Field(gt=0)] = 30.0  # one setup or verify command
    # Hosts a repository's `egress.allow` may name (entries as there); none by default.
    egress_allow: tuple[EgressEntry, ...] = ()

    def enforce(self, config: BotConfig, source: str) -> BotConfig:
        """`config` itself, or a ConfigError naming every value beyond a ceiling."""
        problems = self.problems(config)
        if problems:
            raise ConfigError(source, problems)
        return config

    def problems(self, config: BotConfig) -> list[str]:
        found = [f"{key}: {value} is below the operator's floor of {getattr(self, field)} ({_setting(field)})"
                 for key, value, field in _floors(config) if not permission_at_least(value, getattr(self, field))]
        found += [f"{key}: {_shown(value)} is above the operator's ceiling of {_shown(getattr(self, field))} "
                  f"({_setting(field)})" for key, value, field in _limited(config) if _above(value, getattr(self, field))]
        allowed = ", ".join(self.allowed_models)
        found += [f"{key}: {model} is not one of the operator's allowed models ({allowed}; {_setting('allowed_models')})"
                  for key, model in _models(config) if not any(fnmatchcase(model, p) for p in self.allowed_models)]
        return found + self._image_problems(config) + self._egress_problems(config)

    def _image_problems(self, config: BotConfig) -> list[str]:
        image = config.sandbox.image
        if image in (OPERATOR_IMAGE, *SANDBOX_PROFILES) or any(fnmatchcase(image, p) for p in self.allowed_images):
            return []
        allowed = ", ".join(self.allowed_images) or "none"
        return [f"sandbox.image: {image} is neither a profile ({', '.join(SANDBOX_PROFILES)}) nor one of the "
                f"operator's allowed images ({allowed}; {_setting('allowed_images')})"]

    def _egress_problems(self, config: BotConfig) -> list[str]:
        shown = ", ".join(self.egress_allow) or "empty"
        return [f"egress.allow.{i}: {entry} is not covered by the operator's egress allow-list ({shown}; "
                f"{_setting('egress_allow')})" for i, entry in uncovered(config.egress.allow, self.egress_allow)]


def _floors(config: BotConfig) -> Iterator[tuple[str, str, str]]:
    yield "permissions.trigger", config.permissions.trigger, "min_trigger_permission"
    yield "permissions.approve", config.permissions.approve, "min_approve_permission"


def _limited(config: BotConfig) -> Iterator[tuple[str, str | float, str]]:
    """(key, value, the Ceilings field that bounds it) for every bounded value."""
    yield "sandbox.memory", config.sandbox.memory, "max_memory"
    yield "sandbox.cpus", config.sandbox.cpus, "max_cpus"
    yield "sandbox.pids", config.sandbox.pids, "max_pids"
    for name, worker in config.workers.items():
        yield f"workers.{name}.max_turns", worker.max_turns, "max_turns"
        yield f"workers.{name}.timeout_minutes", worker.timeout_minutes, "max_minutes"
        yield f"workers.{name}.max_cost_usd", worker.max_cost_usd, "max_cost_usd"
    yield "questions.expire_hours", config.questions.expire_hours, "max_question_hours"
    yield "workspace.max_size_mb", config.workspace.max_size_mb, "max_workspace_mb"
    yield "workspace.max_files", config.workspace.max_files, "max_workspace_files"
    yield "workspace.max_file_mb", config.workspace.max_file_mb, "max_file_mb"
    yield "workspace.max_changed_files", config.workspace.max_changed_files, "max_changed_files"
    yield from ((key, minutes, "max_step_minutes") for key, minutes in step_timeouts(config))


def _models(config: BotConfig) -> Iterator[tuple[str, str]]:
    for name, worker in config.workers.items():
        yield f"workers.{name}.model", worker.model
    for label, rule in config.seniority.items():
        yield f"seniority.{label}.model", rule.model


def _above(value: str | float, ceiling: str | float) -> bool:
    if isinstance(value, str):
        return memory_bytes(value) > memory_bytes(str(ceiling))
    return value > float(ceiling)


def _shown(value: str | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _setting(field: str) -> str:
    return f"AGENTVINE_{field.upper()}"
