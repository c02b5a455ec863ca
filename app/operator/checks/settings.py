"""The settings, and the App's credentials in them, as `agentvine serve` will read them."""

from __future__ import annotations

from pydantic import ValidationError

from app.assembly import load_service_config
from app.domain.config import ConfigError
from app.settings import ENV_FILE_VARIABLE, SettingsFileError, env_file_path, load_settings

from .result import CheckResult, Context, failed, ok, skipped

MIN_WEBHOOK_SECRET_CHARS = 16
NEW_SECRET = "python3 -c 'import secrets; print(secrets.token_hex(32))'"
FIX_SETTINGS = "see README.md, 'Settings'"
FIX_KEY = ("set AGENTVINE_PRIVATE_KEY_PATH to the .pem file GitHub gave you (App settings → Private keys), "
           "or AGENTVINE_PRIVATE_KEY to its text with its line breaks")
NO_SETTINGS = "the settings did not load"


def _variable(loc: tuple) -> str:
    """The environment variable a pydantic error is about (`max_cpus` → AGENTVINE_MAX_CPUS)."""
    name = str(loc[0]) if loc else "?"
    return name if name.isupper() else f"AGENTVINE_{name.upper()}"


def check_settings(ctx: Context) -> CheckResult:
    path, _ = env_file_path(ctx.environ)
    try:
        ctx.settings = load_settings(ctx.environ)
    except SettingsFileError as exc:
        return failed("settings", f"the settings file cannot be used: {exc}", f"fix the file or {ENV_FILE_VARIABLE}")
    except ValidationError as exc:  # no input values in the message: they may be secrets
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in exc.errors())
        return failed("settings", f"a setting is not valid: {problems}", FIX_SETTINGS)
    source = f"{path} and the environment" if path.exists() else "the environment (no settings file)"
    return ok("settings", f"read from {source}")


def check_required(ctx: Context) -> CheckResult:
    if ctx.settings is None:
        return skipped("required", NO_SETTINGS)
    missing = ctx.settings.missing_for_serve()
    if missing:
        return failed("required", "missing: " + ", ".join(missing),
                      "`agentvine setup` writes them; or set them yourself (README.md, 'Settings')")
    return ok("required", "the App id, its private key and the webhook secret are set")


def check_private_key(ctx: Context) -> CheckResult:
    settings = ctx.settings
    if settings is None or (settings.private_key is None and settings.private_key_path is None):
        return skipped("private-key", "no private key is set")
    try:
        pem = settings.private_key_pem() or ""
    except OSError as exc:
        return failed("private-key", f"AGENTVINE_PRIVATE_KEY_PATH cannot be read: {exc.strerror}: {exc.filename}",
                      FIX_KEY)
    problem = pem_problem(pem)
    if problem is not None:
        return failed("private-key", problem, FIX_KEY)
    ctx.private_key_pem = pem
    return ok("private-key", "a PEM RSA private key")


def pem_problem(pem: str) -> str | None:
    """Why `pem` is not a key GitHub Apps sign with (an unencrypted RSA key in PEM), or None."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if "-----BEGIN" not in pem:
        return "the private key is not PEM (no '-----BEGIN ... PRIVATE KEY-----' line)"
    if "\\n" in pem and "\n" not in pem.strip():
        return "the private key's line breaks are written as \\n: PEM needs real line breaks"
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        return "the private key is encrypted with a passphrase; GitHub's keys are not"
    except ValueError as exc:
        return f"the private key is not a PEM private key that can be read ({exc.args[0] if exc.args else exc})"
    if not isinstance(key, rsa.RSAPrivateKey):
        return f"the private key is not RSA ({type(key).__name__}): GitHub Apps sign with RSA keys"
    return None


def check_webhook_secret(ctx: Context) -> CheckResult:
    secret = ctx.settings.webhook_secret if ctx.settings else None
    if secret is None or not secret.get_secret_value():
        return skipped("webhook-secret", "AGENTVINE_WEBHOOK_SECRET is not set")
    length = len(secret.get_secret_value())
    if length < MIN_WEBHOOK_SECRET_CHARS:
        return failed("webhook-secret", f"AGENTVINE_WEBHOOK_SECRET has {length} characters: anyone could guess "
                      f"it and forge deliveries (at least {MIN_WEBHOOK_SECRET_CHARS})",
                      f"make one with {NEW_SECRET}, set it here and in the App's settings")
    return ok("webhook-secret", f"set ({length} characters)")


def check_bot_config(ctx: Context) -> CheckResult:
    if ctx.settings is None:
        return skipped("bot-config", NO_SETTINGS)
    try:
        ctx.config = load_service_config(ctx.settings)
    except ConfigError as exc:
        return failed("bot-config", f"{exc.source} cannot be used: " + "; ".join(exc.problems),
                      "see docs/configuration.md ('Ceilings' for a value above the operator's)")
    return ok("bot-config", f"{ctx.settings.bot_config or 'the shipped defaults'} within the operator's ceilings")
