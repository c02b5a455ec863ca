"""Service settings, read from the environment and the settings file (documented in README.md,
"Settings"). `load_settings` is the one way the service reads them."""

from __future__ import annotations

import io
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.agent.boundary.hostgit import DEFAULT_GIT_USER
from app.agent.sandbox.recipe import DEFAULT_IMAGE, PROFILE_IMAGES
from app.domain.config import OPERATOR_IMAGE, Ceilings, Permission

_CEILINGS = Ceilings()  # their defaults, kept in one place

ENV_FILE_VARIABLE = "AGENTVINE_ENV_FILE"
DEFAULT_ENV_FILE = Path("agentvine.env")  # where `agentvine setup` writes, in the current folder


class SettingsFileError(Exception):
    """The settings file cannot be used; the message says why and what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTVINE_", extra="ignore")

    app_id: int | None = None
    private_key: SecretStr | None = None
    private_key_path: Path | None = None
    webhook_secret: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    git_url: str = "https://github.com"
    data_dir: Path = Path(".agentvine")
    # postgresql://… : the store several web and worker instances share (docs/scale-out.md); unset, SQLite
    # in data_dir. A secret: it may hold the database's password.
    database_url: SecretStr | None = None
    # This machine's name among the workers (a job waiting for an answer keeps its files on it); the host
    # name by default. Two machines must not share one.
    worker_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    lease_seconds: float = Field(default=30.0, ge=1.0)  # a dead worker's jobs are taken over after this
    # Where links in check runs point (the job page of this service).
    public_url: str = "http://localhost:8080"
    # Lets the operator list jobs (GET /jobs, `agentvine jobs`); unset, the list is refused.
    operator_token: SecretStr | None = None
    bot_config: Path | None = None
    app_slug: str = "agentvine"  # commits are authored by <slug>[bot]
    app_bot_user_id: int | None = None  # the bot account's id, for its noreply e-mail address

    max_body_bytes: int = 25 * 1024 * 1024
    max_concurrent_jobs: int = 4
    max_jobs_per_installation: int = 3
    max_jobs_per_repo: int = 1
    worker_nice: int = 10  # CPU priority of the worker process below the web process (0 = same)

    # The image of a repository that names none: a profile (`base`, `full`: the tag `agentvine sandbox
    # build` makes, Claude Code version + recipe hash) or any image; default the `full` profile's.
    sandbox_image: str = DEFAULT_IMAGE
    model_api_url: str = "https://api.anthropic.com"
    # The real model key stays on the host; it is read without the AGENTVINE_ prefix.
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "AGENTVINE_ANTHROPIC_API_KEY")
    )
    model_max_retries: int = 2  # Claude Code's retries of a failed model call (its default, 10, takes minutes)
    retention_days: float = 30.0  # deliveries that started nothing, and carried-out commands
    expiry_check_interval: float = 60.0  # seconds between two looks for unanswered questions
    progress_interval: float = 3.0  # seconds between two progress edits of one job, at least
    sentry_dsn: str | None = None
    metrics_token: SecretStr | None = None  # GET /metrics asks for it (Authorization: Bearer) when set
    # Host git runs as this uid:gid when AgentVine runs as root (app/agent/boundary/hostgit.py).
    git_user: str = Field(default=DEFAULT_GIT_USER, pattern=r"^[0-9]+(:[0-9]+)?$")
    # auto: each job gets its own loop-mounted filesystem (the quota) where root and loop devices allow.
    workspace_disk: Literal["auto", "loop", "dir"] = "auto"

    # The operator's ceilings over every repository's .github/agentvine.yml (app/domain/config.py,
    # Ceilings; docs/configuration.md, "Ceilings"). Checked against the defaults at start-up too.
    min_trigger_permission: Permission = _CEILINGS.min_trigger_permission
    min_approve_permission: Permission = _CEILINGS.min_approve_permission
    max_memory: str = _CEILINGS.max_memory
    max_cpus: float = _CEILINGS.max_cpus
    max_pids: int = _CEILINGS.max_pids
    max_minutes: float = _CEILINGS.max_minutes
    max_turns: int = _CEILINGS.max_turns
    max_cost_usd: float = _CEILINGS.max_cost_usd
    allowed_models: Annotated[tuple[str, ...], NoDecode] = _CEILINGS.allowed_models  # comma-separated
    allowed_images: Annotated[tuple[str, ...], NoDecode] = _CEILINGS.allowed_images  # comma-separated
    max_question_hours: float = _CEILINGS.max_question_hours
    max_workspace_mb: int = _CEILINGS.max_workspace_mb
    max_workspace_files: int = _CEILINGS.max_workspace_files
    max_file_mb: int = _CEILINGS.max_file_mb
    max_changed_files: int = _CEILINGS.max_changed_files
    max_step_minutes: float = _CEILINGS.max_step_minutes
    # Package caches (pip, npm) kept per repository under data_dir/caches (app/agent/sandbox/caches.py).
    cache_max_mb: int = Field(default=2048, ge=0)  # per repository and kind; 0: no caches
    # Hosts repositories may allow in `egress.allow` (comma-separated entries; docs/sandbox.md, "Egress").
    egress_allow: Annotated[tuple[str, ...], NoDecode] = _CEILINGS.egress_allow

    @field_validator("allowed_models", "allowed_images", "egress_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return tuple(name.strip() for name in value.split(",") if name.strip()) if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().split(":", 1)[0] not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL (unset: SQLite in the data directory)")
        return value

    @field_validator("sandbox_image")
    @classmethod
    def _profile_tag(cls, value: str) -> str:
        return PROFILE_IMAGES.get(value, value)  # `full` names the profile's image at this version

    def model_post_init(self, _context: Any) -> None:
        _ = self.ceilings  # a ceiling that makes no sense (AGENTVINE_MAX_CPUS=0) fails here, at start, named

    @property
    def ceilings(self) -> Ceilings:
        return Ceilings(**{name: getattr(self, name) for name in Ceilings.model_fields})

    @property
    def database_path(self) -> Path:
        return self.data_dir / "agentvine.db"

    @property
    def inbox_path(self) -> Path:
        return self.data_dir / "inbox"

    def image_for(self, name: str | None) -> str:
        """The image a job runs in for `sandbox.image` = `name` (docs/configuration.md)."""
        if name is None or name == OPERATOR_IMAGE:
            return self.sandbox_image
        return PROFILE_IMAGES.get(name, name)

    def clone_url(self, repo: str) -> str:
        """Where host git fetches and pushes `owner/name` (GitHub Enterprise Server has its own host)."""
        return f"{self.git_url.rstrip('/')}/{repo}.git"

    def noreply_email(self, user_id: int | None, login: str) -> str:
        """A GitHub account's no-reply address, which attributes a commit to it without a real address;
        GitHub Enterprise Server's carry its own host name."""
        host = urlsplit(self.git_url).hostname or "github.com"
        domain = f"users.noreply.{host}"
        return f"{user_id}+{login}@{domain}" if user_id else f"{login}@{domain}"

    @property
    def metrics_dir(self) -> Path:
        """`agentvine serve`'s processes write their figures here (prometheus-client's multiprocess mode)."""
        return self.data_dir / "metrics"

    @property
    def jobs_dir(self) -> Path:
        """Each job's files (app/agent/boundary/workspace.py) live in a folder named by its id in here."""
        return self.data_dir / "jobs"

    def private_key_pem(self) -> str | None:
        if self.private_key is not None:
            return self.private_key.get_secret_value()
        if self.private_key_path is not None:
            return self.private_key_path.read_text()
        return None

    def missing_for_serve(self) -> list[str]:
        """Names of the settings `agentvine serve` cannot run without."""
        missing = []
        if not self.webhook_secret or not self.webhook_secret.get_secret_value():
            missing.append("AGENTVINE_WEBHOOK_SECRET")
        return missing + self._missing_credentials()

    def _missing_credentials(self) -> list[str]:
        missing = []
        if self.app_id is None:
            missing.append("AGENTVINE_APP_ID")
        if self.private_key is None and self.private_key_path is None:
            missing.append("AGENTVINE_PRIVATE_KEY (or AGENTVINE_PRIVATE_KEY_PATH)")
        return missing

    def app_credentials(self) -> tuple[int, str]:
        """The App's id and private key (what the worker signs in with); ValueError names what is missing."""
        missing = self._missing_credentials()
        if missing:
            raise ValueError("missing settings: " + ", ".join(missing))
        pem = self.private_key_pem()
        assert self.app_id is not None and pem is not None
        return self.app_id, pem


def env_file_path(environ: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """The settings file, and whether the operator named it (then it must exist)."""
    named = environ.get(ENV_FILE_VARIABLE)
    return (Path(named), True) if named else (DEFAULT_ENV_FILE, False)


def check_private(path: Path) -> None:
    """The settings file holds the App's private key and webhook secret: refuse one that others may
    read or change, or that is not a plain file of this user's (a symlink could point anywhere)."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise SettingsFileError(f"{path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise SettingsFileError(f"{path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})")
    if info.st_mode & 0o077:
        raise SettingsFileError(
            f"{path} may be read or written by others (mode {stat.S_IMODE(info.st_mode):03o}); run: chmod 600 {path}"
        )


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from the environment, over the settings file (AGENTVINE_ENV_FILE, else ./agentvine.env
    when it exists). Raises SettingsFileError for a named file that is missing or a file not private."""
    path, named = env_file_path(environ)
    if not path.exists() and not path.is_symlink():
        if named:
            raise SettingsFileError(f"{ENV_FILE_VARIABLE} names {path}, which does not exist")
        return Settings()
    check_private(path)
    return Settings(_env_file=path)  # type: ignore[call-arg]  # pydantic-settings' init keyword


# --- writing the settings file (`agentvine setup`) ------------------------------------------------


def format_settings(values: Mapping[str, str], header: str = "") -> str:
    """`KEY="value"` lines that load_settings reads back exactly (a PEM key's newlines escaped).
    python-dotenv expands `${NAME}` even in quotes, so a value holding one cannot be written."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for key, value in values.items():
        if "${" in value or "\0" in value or "\r" in value:
            raise ValueError(f"{key} holds characters a settings file cannot carry")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{key}="{escaped}"')
    text = "\n".join(lines) + "\n"
    if dotenv_values(stream=io.StringIO(text)) != dict(values):
        raise ValueError("the settings would not read back as written")  # never write what serve misreads
    return text


def other_settings(path: Path, keys: set[str]) -> str:
    """The lines of an existing settings file that set none of `keys` (comments too), verbatim."""
    kept = [b.original.string for b in parse_stream(io.StringIO(path.read_text())) if b.key not in keys]
    text = "".join(kept)
    return text if not text or text.endswith("\n") else text + "\n"


def write_private_file(path: Path, text: str, *, replace: bool) -> None:
    """Write `text` to `path` as a file only its owner may read (0600 from its first byte: it is made
    under another name and then linked or renamed into place). Without `replace`, an existing
    `path` (even a dangling symlink) stays as it is and FileExistsError is raised."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temporary, path)  # a symlink at `path` is replaced, never written through
        else:
            os.link(temporary, path)  # atomic, and refuses to replace anything
            os.unlink(temporary)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
