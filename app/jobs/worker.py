"""arq worker: every background job and cron job in one place. Jobs may run more than once."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from arq import cron
from arq.connections import RedisSettings

from app.config import get_settings
from app.db import Database
from app.events import set_event_sink, sink_for_url
from app.jobs.printing import print_certificate
from app.services.auth import purge_expired_sessions
from app.services.certificates import (
    configure_printing,
    print_context_from_settings,
    run_print_order,
    unprinted_orders,
)
from app.services.devices import expire_jobs

log = logging.getLogger("madoguchi.worker")


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["settings"] = settings
    ctx["db"] = Database(settings.effective_database_url)
    # Events published by jobs reach the web processes through Redis.
    ctx["sink"] = sink_for_url(settings.effective_events_url)
    set_event_sink(ctx["sink"])
    # Certificates are rendered, signed and stored here as in the web process.
    configure_printing(print_context_from_settings(settings))


async def shutdown(ctx: dict[str, Any]) -> None:
    db: Database = ctx["db"]
    db.dispose()
    set_event_sink(None)
    configure_printing(None)
    if ctx.get("sink") is not None:
        ctx["sink"].close()


async def purge_sessions(ctx: dict[str, Any]) -> int:
    """Delete staff sessions past their idle timeout (idempotent)."""
    db: Database = ctx["db"]
    idle = timedelta(minutes=ctx["settings"].session_idle_minutes)
    with db.write_session() as session:
        removed = purge_expired_sessions(session, idle=idle)
        session.commit()
    if removed:
        log.info("purged %d expired staff sessions", removed)
    return removed


async def expire_print_jobs(ctx: dict[str, Any]) -> int:
    """Fail print jobs past their expiry, with a reason staff can read (idempotent)."""
    db: Database = ctx["db"]
    with db.write_session() as session:
        expired = expire_jobs(session)
        session.commit()
    if expired:
        log.info("expired %d print jobs", expired)
    return expired


async def resume_prints(ctx: dict[str, Any]) -> int:
    """Print automatic orders that were committed but never carried out (a process stopped in
    between); running an order that did run after all prints nothing (idempotent)."""
    db: Database = ctx["db"]
    with db.session() as session:
        orders = unprinted_orders(session, older_than=timedelta(minutes=10))
    for order in orders:
        await asyncio.to_thread(run_print_order, db, order)
    if orders:
        log.warning("printed %d certificate(s) whose print order had been lost", len(orders))
    return len(orders)


def redis_settings() -> RedisSettings:
    url = get_settings().redis_url
    if not url:
        raise RuntimeError(
            "MADOGUCHI_REDIS_URL is empty: the worker needs Redis (madoguchi serve starts one)"
        )
    return RedisSettings.from_dsn(url)


class WorkerSettings:
    """Passed to arq's run_worker with `redis_settings=redis_settings()` (see app.cli)."""

    functions = [purge_sessions, expire_print_jobs, print_certificate, resume_prints]
    cron_jobs = [
        cron(purge_sessions, minute={0, 15, 30, 45}, run_at_startup=True),
        cron(expire_print_jobs, minute=set(range(0, 60, 5)), run_at_startup=True),
        cron(resume_prints, minute=set(range(0, 60, 5)), run_at_startup=True),
    ]
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 10
    job_timeout = 300
    keep_result = 3600
    # A certificate's print job waits for the worker's next look at the queue: look often.
    poll_delay = 0.05
