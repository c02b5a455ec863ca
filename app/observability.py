"""Error reporting: Sentry when AGENTVINE_SENTRY_DSN is set, nothing otherwise."""

from __future__ import annotations

from app.settings import Settings


def init_sentry(settings: Settings) -> bool:
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration

    # send_default_pii off: issue bodies and tokens must not leave for a third party.
    sentry_sdk.init(dsn=settings.sentry_dsn, integrations=[AioHttpIntegration()], send_default_pii=False)
    return True
