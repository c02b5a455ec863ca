"""The two services AgentVine calls: GitHub takes the App's JWT, the model API takes the key."""

from __future__ import annotations

import asyncio

import aiohttp
import gidgethub

from app.github.client import GitHubClients

from .result import CheckResult, Context, failed, ok, skipped

ANTHROPIC_VERSION = "2023-06-01"
FIX_GITHUB_URL = ("AGENTVINE_GITHUB_API_URL is the REST API's root: https://api.github.com, "
                  "or https://HOST/api/v3 for GitHub Enterprise Server")
FIX_WRONG_KEY = ("the key must be one of this App's (App settings → Private keys) and AGENTVINE_APP_ID "
                 "this App's id; `agentvine setup` writes both")
FIX_MODEL_KEY = "set ANTHROPIC_API_KEY to a key of your Anthropic Console (console.anthropic.com → API keys)"


def _unreachable(what: str, url: str, exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"{what} at {url} did not answer within {timeout:g} s"
    return f"cannot reach {what} at {url}: {exc}"


async def check_github(ctx: Context) -> CheckResult:
    """GET /app with the App's JWT: GitHub answers with the App only when it takes the key for it."""
    settings = ctx.settings
    if settings is None or settings.app_id is None or ctx.private_key_pem is None:
        return skipped("github", "no usable App id and private key")
    url = settings.github_api_url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ctx.timeout)) as session:
        clients = GitHubClients(app_id=settings.app_id, private_key_pem=ctx.private_key_pem, base_url=url,
                                session=session)
        clients.api.max_attempts = 1  # a doctor reports what it finds; the service retries
        try:
            app = await clients.api.getitem("/app", jwt=clients.auth.jwt())
        except gidgethub.HTTPException as exc:
            return _refused(exc, url)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return failed("github", _unreachable("GitHub", url, exc, ctx.timeout), FIX_GITHUB_URL)
    if not isinstance(app, dict) or "id" not in app:
        return failed("github", f"{url}/app did not answer as GitHub does", FIX_GITHUB_URL)
    if app["id"] != settings.app_id:
        return failed("github", f"GitHub took the key for App {app['id']}, not AGENTVINE_APP_ID={settings.app_id}",
                      FIX_WRONG_KEY)
    installs = app.get("installations_count")
    counted = f", {installs} installation{'s' * (installs != 1)}" if isinstance(installs, int) else ""
    return ok("github", f"{url} takes the App's JWT: App {app['id']} ({app.get('slug', '?')}){counted}")


def _refused(exc: gidgethub.HTTPException, url: str) -> CheckResult:
    status = int(exc.status_code)
    said = str(exc) or exc.status_code.phrase
    if status == 401:
        return failed("github", f"GitHub refused the App's JWT (401: {said})", FIX_WRONG_KEY)
    if status == 404:
        return failed("github", f"{url}/app is not found (404): not a GitHub REST API root", FIX_GITHUB_URL)
    return failed("github", f"GitHub answered {status} to GET /app: {said}",
                  "try again later; https://www.githubstatus.com says whether GitHub is down" if status >= 500 else None)


async def check_model_key(ctx: Context) -> CheckResult:
    """GET /v1/models with the key, as the gateway sends it (x-api-key): 200 only for a key the API takes."""
    settings = ctx.settings
    if settings is None:
        return skipped("model-key", "the settings did not load")
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
        return failed("model-key", "ANTHROPIC_API_KEY is not set: no job can run the agent", FIX_MODEL_KEY)
    base = settings.model_api_url.rstrip("/")
    headers = {"x-api-key": settings.anthropic_api_key.get_secret_value(), "anthropic-version": ANTHROPIC_VERSION}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ctx.timeout)) as session, \
                session.get(f"{base}/v1/models", params={"limit": "1"}, headers=headers) as answer:
            status = answer.status
            body = await answer.json(content_type=None) if status != 204 else None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return failed("model-key", _unreachable("the model API", base, exc, ctx.timeout),
                      "AGENTVINE_MODEL_API_URL is the API's root (https://api.anthropic.com)")
    except ValueError:
        return failed("model-key", f"{base}/v1/models did not answer JSON: not the Anthropic API",
                      "AGENTVINE_MODEL_API_URL is the API's root (https://api.anthropic.com)")
    if status == 200:
        return ok("model-key", f"{base} takes ANTHROPIC_API_KEY")
    error = body.get("error") if isinstance(body, dict) else None
    said = f"{error.get('type')}: {error.get('message')}" if isinstance(error, dict) else "no error body"
    if status in (401, 403):
        return failed("model-key", f"the model API refused ANTHROPIC_API_KEY ({status} {said})", FIX_MODEL_KEY)
    return failed("model-key", f"the model API answered {status} to GET /v1/models ({said})",
                  "https://status.anthropic.com says whether the API is down" if status >= 500 else None)
