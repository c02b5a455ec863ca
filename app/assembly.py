"""AgentVine in one process: the web app and the worker side by side (tests and the demo).
`agentvine serve` runs the two in separate processes (see app/cli.py)."""

from __future__ import annotations

from aiohttp import web

from app.domain.config import BotConfig, load_default
from app.settings import Settings
from app.store import SQLiteJobStore
from app.store.base import JobStore
from app.web.server import make_web_app
from app.engine.worker import Worker


class Service:
    def __init__(self, settings: Settings, *, store: JobStore | None = None, config: BotConfig | None = None) -> None:
        missing = settings.missing_for_serve()
        if missing:
            raise ValueError("missing settings: " + ", ".join(missing))
        self.settings = settings
        self.config = config or load_default(settings.bot_config)
        self.store = store or SQLiteJobStore(settings.database_path)
        self.worker = Worker(settings, self.store, self.config)

    @property
    def dispatcher(self):  # noqa: ANN201 - convenience for tests
        return self.worker.dispatcher

    @property
    def clients(self):  # noqa: ANN201
        return self.worker.clients

    def make_app(self) -> web.Application:
        app = make_web_app(self.settings, self.store, on_stored=self.worker.dispatcher.wake)
        app.on_startup.append(lambda _app: self.worker.start())
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        await self.worker.stop()
        self.store.close()
