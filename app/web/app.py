"""The Starlette application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from app.config import Settings, get_settings
from app.db import Database
from app.events import EventHub
from app.jobs.printing import ArqPrintDispatcher, LocalPrintRunner
from app.printing.signing import signer_from_settings
from app.services.certificates import (
    PrintContext,
    PrintDispatcher,
    configure_printing,
    set_print_dispatcher,
    unprinted_orders,
)
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
        runner = LocalPrintRunner(database)
        app.state.print_runner = runner
        pool = await _job_pool(settings)
        dispatcher: PrintDispatcher = (
            ArqPrintDispatcher(pool, asyncio.get_running_loop(), runner, queue_name=settings.job_queue)
            if pool is not None
            else runner
        )
        previous = set_print_dispatcher(dispatcher)
        if pool is None:
            # No worker runs the lost-order sweep (app.jobs.worker.resume_prints): do it once now.
            await asyncio.to_thread(_resume_prints, database, runner)
        # What start-up made (modules, templates, fonts) lives as long as the process: move it out
        # of the collector's reach, so a full collection does not pause every event stream for it.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            set_print_dispatcher(previous)
            if pool is not None:
                await pool.aclose()
            await asyncio.to_thread(runner.close)  # the orders handed over are finished first
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


async def _job_pool(settings: Settings) -> ArqRedis | None:
    """The arq queue when Redis is configured and answers; None: print in this process."""
    if not settings.redis_url:
        return None
    try:
        return await create_pool(
            RedisSettings.from_dsn(settings.redis_url), default_queue_name=settings.job_queue
        )
    except Exception:
        log.exception("Redis does not answer: certificates are printed by this web process")
        return None


def _resume_prints(database: Database, runner: LocalPrintRunner) -> None:
    with database.session() as session:
        orders = unprinted_orders(session, older_than=timedelta(0))
    for order in orders:
        runner(order)
