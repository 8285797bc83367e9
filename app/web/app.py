"""The Starlette application factory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from app.config import Settings, get_settings
from app.db import Database
from app.events import EventHub
from app.printing.signing import signer_from_settings
from app.services.certificates import PrintContext, configure_printing
from app.storage import LocalObjectStore
from app.web.errors import http_error, server_error
from app.web.kiosk import CardChecks
from app.web.middleware import RequestContextMiddleware
from app.web.routes import routes
from app.web.security import Keys
from app.web.templating import make_templates

log = logging.getLogger("madoguchi.web")


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> Starlette:
    settings = settings or get_settings()
    database = db or Database(settings.effective_database_url)
    keys = Keys(settings.resolved_secret_key())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = EventHub.from_url(
            settings.effective_events_url, replay_size=settings.event_replay_size, db=database
        )
        await hub.start()
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.stop()
            if db is None:
                database.dispose()

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(
                RequestContextMiddleware,
                keys=keys,
                default_language=settings.default_locale,
                secure=settings.cookie_secure,
            )
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.keys = keys
    app.state.templates = make_templates()
    app.state.objects = LocalObjectStore(settings.data_dir / "objects")
    app.state.card_checks = CardChecks(settings)
    configure_printing(
        PrintContext(
            store=app.state.objects, signer=signer_from_settings(settings), verify_base_url=settings.base_url
        )
    )
    return app
