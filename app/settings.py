"""Service settings, read from the environment (documented in README.md, "Settings")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.agent.boundary.hostgit import DEFAULT_GIT_USER
from app.agent.sandbox.recipe import DEFAULT_IMAGE
from app.domain.config import Ceilings, Permission

_CEILINGS = Ceilings()  # their defaults, kept in one place


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTVINE_", extra="ignore")

    app_id: int | None = None
    private_key: SecretStr | None = None
    private_key_path: Path | None = None
    webhook_secret: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    git_url: str = "https://github.com"
    data_dir: Path = Path(".agentvine")
    # Where links in check runs point (the job page of this service).
    public_url: str = "http://localhost:8080"
    bot_config: Path | None = None
    app_slug: str = "agentvine"  # commits are authored by <slug>[bot]
    app_bot_user_id: int | None = None  # the bot account's id, for its noreply e-mail address

    max_body_bytes: int = 25 * 1024 * 1024
    max_concurrent_jobs: int = 4
    max_jobs_per_installation: int = 3
    max_jobs_per_repo: int = 1
    worker_nice: int = 10  # CPU priority of the worker process below the web process (0 = same)

    # Default: the tag `agentvine sandbox build` produces (Claude Code version + recipe hash).
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
    max_question_hours: float = _CEILINGS.max_question_hours
    max_workspace_mb: int = _CEILINGS.max_workspace_mb
    max_workspace_files: int = _CEILINGS.max_workspace_files
    max_file_mb: int = _CEILINGS.max_file_mb
    max_changed_files: int = _CEILINGS.max_changed_files

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return tuple(name.strip() for name in value.split(",") if name.strip()) if isinstance(value, str) else value

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

    def clone_url(self, repo: str) -> str:
        """Where host git fetches and pushes `owner/name` (GitHub Enterprise Server has its own host)."""
        return f"{self.git_url.rstrip('/')}/{repo}.git"

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
