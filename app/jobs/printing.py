"""Where certificate print orders run (app.services.certificates.run_print_order).

- With Redis (`MADOGUCHI_REDIS_URL`): the web process enqueues an arq job, `print_certificate`,
  and the worker(s) (`madoguchi worker`) run it. Several worker processes render in parallel.
- Without Redis (SQLite demo, tests), or when Redis cannot take the job: `LocalPrintRunner`, a
  thread pool in the web process with as many threads as CPUs.

Either way the order is handed over only after the transaction that made it commits
(`print_on_commit`), and running an order twice makes one issue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from typing import Any

from arq.connections import ArqRedis

from app.db import Database
from app.services import certificates
from app.services.certificates import PrintOrder, PrintResult

log = logging.getLogger("madoguchi.jobs.printing")

JOB_NAME = "print_certificate"


class LocalPrintRunner:
    """Runs print orders on a bounded thread pool in this process (a PrintDispatcher)."""

    def __init__(self, db: Database, *, threads: int | None = None) -> None:
        self.db = db
        self.threads = threads or os.cpu_count() or 1
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.threads, thread_name_prefix="madoguchi-print"
        )
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[PrintResult]] = set()

    def __call__(self, order: PrintOrder) -> None:
        future = self._pool.submit(certificates.run_print_order, self.db, order)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: concurrent.futures.Future[PrintResult]) -> None:
        with self._lock:
            self._pending.discard(future)
        error = future.exception()
        if error is not None:  # run_print_order records its own failures; this is a bug
            log.error("print order failed unexpectedly", exc_info=error)

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until every order handed over so far (and any they led to) has run."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = set(self._pending)
            if not pending:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(pending)} print order(s) still running after {timeout} s")
            concurrent.futures.wait(pending, timeout=left)

    def close(self) -> None:
        """Finish what was handed over, then stop the threads."""
        self._pool.shutdown(wait=True)


class ArqPrintDispatcher:
    """Enqueues print orders as arq jobs; runs them locally when Redis does not take them."""

    def __init__(
        self, pool: ArqRedis, loop: asyncio.AbstractEventLoop, fallback: LocalPrintRunner, *, queue_name: str
    ) -> None:
        self.pool = pool
        self.loop = loop
        self.fallback = fallback
        self.queue_name = queue_name

    async def enqueue(self, order: PrintOrder) -> None:
        await self.pool.enqueue_job(JOB_NAME, order.to_json(), _queue_name=self.queue_name)

    def __call__(self, order: PrintOrder) -> None:
        """Schedule the enqueue on the event loop and return at once: the request that committed
        must not wait for the loop, which may be busy fanning the request's event out to hundreds
        of screens. If Redis refuses the job, the order runs here instead."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.loop.create_task(self.enqueue(order)).add_done_callback(lambda t: self._check(t, order))
        else:
            future = asyncio.run_coroutine_threadsafe(self.enqueue(order), self.loop)
            future.add_done_callback(lambda f: self._check(f, order))

    def _check(self, done: asyncio.Future[None] | concurrent.futures.Future[None], order: PrintOrder) -> None:
        if done.cancelled() or done.exception() is not None:
            log.error(
                "could not enqueue the print of request %s; printing here",
                order.request_id,
                exc_info=None if done.cancelled() else done.exception(),
            )
            self.fallback(order)


async def print_certificate(ctx: dict[str, Any], order: dict[str, Any]) -> str:
    """arq job: carry out one print order (safe to run twice: the second run prints nothing)."""
    db: Database = ctx["db"]
    result = await asyncio.to_thread(certificates.run_print_order, db, PrintOrder.from_json(order))
    return result.outcome
