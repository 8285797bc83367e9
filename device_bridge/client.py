"""The device bridge process: connects out to the server, prints its jobs, reports back.

    madoguchi bridge --config bridge.toml        (or: python -m device_bridge --config bridge.toml)

One asyncio loop runs:

- the **event stream** (``GET /devices/api/stream``, Server-Sent Events, parsed here): ``hello``,
  every unfinished ``job`` at connect (redelivery), then live jobs, ``cancel`` and ``command``.
  ``Last-Event-ID`` on reconnect; 45 s without a byte (pings come every 15 s) counts as a dead
  connection; reconnects back off 1 → 30 s; a refused token is logged and retried every minute.
- one **worker per printer** (receipt, office): jobs print one after the other per printer; the
  blocking driver calls run in threads. The journal (:mod:`device_bridge.journal`) records each
  (job id, attempt) before and after the printer takes it, so a redelivered job prints nothing
  twice. A printer that can't print (paper out, cover open, offline) makes the job wait: it is
  reported ``delivered`` with the reason (「用紙切れ」) and retried every few seconds.
- the **heartbeat** (printers, card reader, scanner, version) every 15 s;
- the **card-reader watcher** (PC/SC): ``card_inserted`` / ``card_removed`` events;
- the **scanner** (a QR / 2D-code reader on a serial port): a ``scan`` event per code, which staff
  pages receive (keyboard-wedge scanners type into the focused input and need no bridge);
- the **signal light**: ``{"command": "light", "state": "on"|"off"}``.

SIGTERM/SIGINT stop it gracefully: a print under way finishes (and is journalled) first.
Logs never contain the token (nor PINs: the bridge never logs command payloads; nor scanned
text, which may be personal data: only its length, at debug level).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import functools
import json
import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import httpx

from device_bridge.config import BridgeConfig, ConfigError, LightConfig, ScannerConfig, load_config
from device_bridge.journal import AMBIGUOUS_REASON, Entry, Journal, JournalState, job_title
from device_bridge.light import LightUnavailable, SerialLight, SignalLight, SimulatedLight

if TYPE_CHECKING:
    from device_bridge.drivers.office import OfficePrinter
    from device_bridge.drivers.receipt import ReceiptPrinter

__all__ = [
    "MESSAGE_BAD_TOKEN",
    "Bridge",
    "PrintOrder",
    "SseMessage",
    "SseParser",
    "main",
    "run_bridge",
]

log = logging.getLogger("device_bridge")

MESSAGE_BAD_TOKEN = "機器トークンが無効です。管理画面で機器を確認してください。"
MESSAGE_NO_PRINTER = "この端末には{printer}が設定されていません。"
MESSAGE_BAD_JOB = "印刷データが正しくありません（{detail}）"
MESSAGE_CUPS_CANCELLED = "プリンター側で印刷が取り消されました。"
MESSAGE_NO_DOCUMENT = "印刷する文書を取得できません（{detail}）"
MESSAGE_NO_READER = "カードリーダーが見つかりません（接続と pcscd を確認してください）"
MESSAGE_NO_PCSC = "カードリーダーを使えません（PC/SC が使えません）"
MESSAGE_NO_SCANNER = "スキャナーが見つかりません（接続を確認してください）"
PRINTER_NAMES = {"receipt": "レシートプリンター", "office": "事務用プリンター"}

FINAL_SERVER_STATES = frozenset({"done", "failed", "cancelled"})
_OFFICE_RESUMES = (JournalState.SENDING, JournalState.SENT)
# A scan the server could not be given within this time is dropped: staff have moved on by then,
# and a late one would land in whatever form is open now.
SCAN_MAX_AGE_SECONDS = 20.0
T = TypeVar("T")


def bridge_version() -> str:
    try:
        return metadata.version("madoguchi")
    except metadata.PackageNotFoundError:
        return "0.0.0"


# --- Server-Sent Events ------------------------------------------------------------------------


@dataclass(frozen=True)
class SseMessage:
    event: str
    data: str
    id: str | None = None


class SseParser:
    """The event-stream format (WHATWG HTML §9.2), fed line by line (without line endings)."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._has_id = False

    def reset(self) -> None:
        """Forget a half-received message (a new connection); the last event id stays."""
        self._event = ""
        self._data = []
        self._has_id = False

    def feed(self, line: str) -> SseMessage | None:
        if line == "":
            if not self._data:
                self._event = ""
                self._has_id = False
                return None
            message = SseMessage(
                event=self._event or "message",
                data="\n".join(self._data),
                id=self.last_event_id if self._has_id else None,
            )
            self._event = ""
            self._data = []
            self._has_id = False
            return message
        if line.startswith(":"):
            return None  # a comment: the server's ping
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value or None
            self._has_id = True
        return None


# --- jobs --------------------------------------------------------------------------------------


@dataclass(eq=False)
class PrintOrder:
    """A print job as the server sent it."""

    id: int
    attempt: int
    printer: str
    title: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    copies: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    generation: int = 0  # the stream connection it was last (re)delivered on
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def key(self) -> tuple[int, int]:
        return self.id, self.attempt

    @property
    def label(self) -> str:
        return f"job {self.id} attempt {self.attempt} ({self.printer})"

    @classmethod
    def parse(cls, data: Any) -> PrintOrder:
        if not isinstance(data, Mapping):
            raise ValueError("a job must be an object")
        job_id = data.get("id", data.get("job_id"))
        attempt = data.get("attempt", 1)
        printer = data.get("printer")
        if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id < 1:
            raise ValueError("job 'id' must be a positive integer")
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise ValueError("job 'attempt' must be a positive integer")
        if not isinstance(printer, str):
            raise ValueError("job 'printer' must be a string")
        title = data.get("title") or ""
        payload = data.get("payload") or {}
        copies = data.get("copies", 1)
        options = data.get("options") or {}
        if not isinstance(payload, Mapping) or not isinstance(options, Mapping):
            raise ValueError("job 'payload' and 'options' must be objects")
        if not isinstance(copies, int) or isinstance(copies, bool) or not 1 <= copies <= 99:
            raise ValueError("job 'copies' must be 1 to 99")
        return cls(job_id, attempt, printer, str(title), dict(payload), copies, dict(options))


def job_key(data: Any) -> tuple[int, int] | None:
    """(id, attempt) of a cancel event: ``{"id"|"job_id": …, "attempt": …}``."""
    if not isinstance(data, Mapping):
        return None
    job_id = data.get("id", data.get("job_id"))
    attempt = data.get("attempt")
    if isinstance(job_id, int) and isinstance(attempt, int):
        return job_id, attempt
    return None


class Reply(enum.Enum):
    OK = "ok"
    STALE = "stale"  # 409: cancelled or superseded by a staff retry
    GONE = "gone"  # 404: not this device's job
    UNAUTHORIZED = "unauthorized"
    UNREACHABLE = "unreachable"  # network error, 5xx, anything else: try again later


@dataclass(frozen=True)
class ReportResult:
    reply: Reply
    state: str = ""

    @property
    def drop(self) -> bool:
        """The server doesn't want this attempt (any more)."""
        return self.reply in (Reply.STALE, Reply.GONE) or (
            self.reply is Reply.OK and self.state in FINAL_SERVER_STATES
        )


class SendOutcome(enum.Enum):
    SENT = "sent"
    AMBIGUOUS = "ambiguous"
    SKIPPED = "skipped"  # cancelled (or no longer 'received') before anything was sent


class NotSent(Exception):
    """The printer refused before anything was sent; ``reason`` is for staff (Japanese)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CardWatcher(Protocol):
    reader: str | None

    def stop(self) -> None: ...


CardWatcherFactory = Callable[[Callable[[Any], None], str | None], CardWatcher]


class Scanner(Protocol):
    """What the bridge needs of a scanner (:class:`device_bridge.drivers.scanner.SerialScanner`)."""

    connected: bool
    reason: str

    def start(self, on_scan: Callable[[str], None]) -> None: ...

    def stop(self) -> None: ...


# --- printer adapters (blocking; run in threads) -------------------------------------------------


def receipt_from_payload(payload: Mapping[str, Any]) -> Any:
    """The receipt driver's layout model from ``payload["receipt"]``."""
    from device_bridge.drivers.receipt import Receipt

    data = payload.get("receipt")
    if not isinstance(data, Mapping):
        raise ValueError("payload has no 'receipt' object")
    return Receipt.from_dict(data)


def send_receipt(printer: ReceiptPrinter, data: bytes, journal: Journal, order: PrintOrder) -> SendOutcome:
    """Send prepared ESC/POS bytes with the journal around the one moment that matters.

    Like ``ReceiptPrinter.print_raw`` (status first, then the data, then status again), but split
    so the journal knows which side of the write a failure fell on: before → :class:`NotSent`
    (safe to retry); during → ambiguous (never printed again). ``sent`` is committed the moment
    the write returns, so a crash can only leave ``sending`` behind for the few microseconds of
    the write itself. The status read after it confirms the printer is still there; if it isn't,
    the job is downgraded to ambiguous too.
    """
    check = printer.config.check_status
    with printer.connect() as connection:  # PrinterUnavailable: nothing sent
        if check:
            status = connection.status()
            if not status.can_print:
                raise NotSent(status.reason)
        if not journal.begin_sending(order.id, order.attempt, order.printer):
            return SendOutcome.SKIPPED
        try:
            connection.send(data)
        except Exception:
            journal.mark_ambiguous(order.id, order.attempt)
            log.warning("%s: connection lost while sending; it may or may not have printed", order.label)
            return SendOutcome.AMBIGUOUS
        journal.mark_sent(order.id, order.attempt)
        if check:
            try:
                connection.status()
            except Exception:
                journal.mark_ambiguous(order.id, order.attempt)
                log.warning(
                    "%s: the printer stopped answering after the data; it may not have printed",
                    order.label,
                )
                return SendOutcome.AMBIGUOUS
        return SendOutcome.SENT


def submit_office(
    printer: OfficePrinter,
    pdf: bytes,
    journal: Journal,
    order: PrintOrder,
    *,
    duplex: str | None,
    tray: str | None,
) -> tuple[SendOutcome, int | None]:
    """Hand a PDF to CUPS as ``madoguchi-job-<id>-<attempt>``, journalled; (outcome, CUPS job id)."""
    from device_bridge.drivers.office import PrinterUnavailable

    printer.check_available()  # PrinterUnavailable: nothing sent
    if not journal.begin_sending(order.id, order.attempt, order.printer):
        return SendOutcome.SKIPPED, None
    title = job_title(order.id, order.attempt)
    duplex_arg: Literal["long", "short"] | bool | None = None
    if duplex == "off":
        duplex_arg = False
    elif duplex in ("long", "short"):
        duplex_arg = "long" if duplex == "long" else "short"
    try:
        cups_id = printer.print_pdf(
            pdf, copies=order.copies, duplex=duplex_arg, tray=tray, title=title, checked=True
        )
    except (PrinterUnavailable, OSError) as exc:
        # The Print-Job failed, or timed out: did CUPS take it anyway? It knows the job by its title.
        found = printer.find_job(title)  # PrinterUnavailable: stays 'sending', resolved on retry
        if found is None:
            journal.back_to_received(order.id, order.attempt, str(exc))
            raise NotSent(getattr(exc, "reason", "") or "印刷できませんでした") from exc
        cups_id = found
    journal.mark_sent(order.id, order.attempt, cups_id)
    return SendOutcome.SENT, cups_id


# --- the bridge --------------------------------------------------------------------------------


class Bridge:
    """Everything the bridge does, on one asyncio loop; ``await bridge.run(stop_event)``."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        receipt_printer: ReceiptPrinter | None = None,
        office_printer: OfficePrinter | None = None,
        light: SignalLight | None = None,
        card_watcher_factory: CardWatcherFactory | None = None,
        scanner: Scanner | None = None,
        unauthorized_retry_seconds: float = 60.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.config = config
        self.version = bridge_version()
        self.receipt_printer = receipt_printer
        self.office_printer = office_printer
        self.light = light
        self._card_watcher_factory = card_watcher_factory
        self.scanner = scanner
        self.unauthorized_retry_seconds = unauthorized_retry_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.journal: Journal | None = None
        self.device: dict[str, Any] = {}
        self.connected = False
        self.generation = 0
        self.last_status: dict[str, Any] = {}
        self._http: httpx.AsyncClient | None = None
        self._parser = SseParser()
        self._queues: dict[str, asyncio.Queue[PrintOrder]] = {}
        self._pending: dict[tuple[int, int], PrintOrder] = {}
        self._unsent: dict[tuple[int, int], tuple[str, str]] = {}
        self._unsent_wake = asyncio.Event()
        self._resend_now = asyncio.Event()
        self._heartbeat_wake = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._card_watcher: CardWatcher | None = None
        self._card_present = False
        self._card_reason = ""
        # Card and scan events for the server, in order: (type, data, when queued (monotonic)).
        self._events: asyncio.Queue[tuple[str, dict[str, Any], float]] = asyncio.Queue(maxsize=100)
        self._unauthorized_logged = False
        self._disconnect_logged = False

    # -- lifecycle --

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or the task is cancelled); then shut down cleanly."""
        if stop is not None:
            self._stop = stop
        self._open_devices()
        self.journal = await asyncio.to_thread(Journal, self.config.journal_path)
        pruned = await asyncio.to_thread(self.journal.prune)
        if pruned:
            log.info("journal: %d old entries forgotten", pruned)
        timeout = httpx.Timeout(self.config.request_timeout)
        self._http = httpx.AsyncClient(
            base_url=self.config.server_url,
            headers={
                "Authorization": f"Bearer {self.config.token}",
                "User-Agent": f"madoguchi-bridge/{self.version}",
            },
            timeout=timeout,
            follow_redirects=False,
        )
        tasks = [
            asyncio.create_task(self._stream_loop(), name="stream"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._resend_loop(), name="resend"),
        ]
        workers = [
            asyncio.create_task(self._worker(printer), name=f"worker:{printer}") for printer in self._queues
        ]
        events = False
        if self.config.card_reader is not None and self.config.card_reader.enabled:
            self._start_card_watcher()
            events = True
        if self.scanner is not None:
            self._start_scanner()
            events = True
        if events:
            tasks.append(asyncio.create_task(self._event_loop(), name="device-events"))
        log.info(
            "bridge %s started: server %s, printers: %s",
            self.version,
            self.config.server_url,
            ", ".join(self._queues) or "none",
        )
        try:
            await self._stop.wait()
        finally:
            log.info("bridge stopping")
            for task in tasks:
                task.cancel()
            # Workers stop at their next safe point; a print under way finishes first.
            for task in workers:
                task.cancel()
            await asyncio.gather(*tasks, *workers, return_exceptions=True)
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self._close_devices()
            if self._http is not None:
                await self._http.aclose()
            if self.journal is not None:
                self.journal.close()
            log.info("bridge stopped")

    def stop(self) -> None:
        self._stop.set()

    def _open_devices(self) -> None:
        config = self.config
        if config.receipt is not None:
            if self.receipt_printer is None:
                from device_bridge.drivers.receipt import ReceiptPrinter

                self.receipt_printer = ReceiptPrinter.from_config(config.receipt.options)
            self._queues["receipt"] = asyncio.Queue()
        if config.office is not None:
            if self.office_printer is None:
                from device_bridge.drivers.office import OfficePrinter

                self.office_printer = OfficePrinter.from_config(config.office.options)
            self._queues["office"] = asyncio.Queue()
        if self.light is None and config.signal_light is not None:
            self.light = make_light(config.signal_light)
        if self.scanner is None and config.scanner is not None:
            self.scanner = make_scanner(config.scanner)

    async def _close_devices(self) -> None:
        watcher, self._card_watcher = self._card_watcher, None
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)
        if self.scanner is not None:
            await asyncio.to_thread(self.scanner.stop)
        if self.light is not None:
            await asyncio.to_thread(self.light.close)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep, waking early when stopping (or when ``wake`` is set)."""
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in a thread; if cancelled meanwhile, let it finish first."""
        future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await future
            raise

    def _journal(self) -> Journal:
        assert self.journal is not None, "the bridge is not running"
        return self.journal

    def _client(self) -> httpx.AsyncClient:
        assert self._http is not None, "the bridge is not running"
        return self._http

    # -- the event stream --

    async def _stream_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            generation = self.generation
            wait = backoff * random.uniform(0.8, 1.2)
            try:
                wait = await self._stream_once() or wait
            except (httpx.HTTPError, OSError, ValueError) as exc:
                if not self._disconnect_logged:
                    log.warning("server unreachable (%s); retrying", type(exc).__name__)
                    self._disconnect_logged = True
            finally:
                if self.connected:
                    log.info("event stream closed")
                self.connected = False
            if self.generation != generation:  # got as far as hello: start the backoff again
                backoff = 1.0
                wait = min(wait, random.uniform(0.5, 1.0))
            else:
                backoff = min(backoff * 2, self.max_backoff_seconds)
            await self._sleep(wait)

    async def _stream_once(self) -> float | None:
        """One connection, until it ends; how long to wait before the next (None: the backoff)."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self._parser.last_event_id:
            headers["Last-Event-ID"] = self._parser.last_event_id
        timeout = httpx.Timeout(self.config.request_timeout, read=self.config.stream_timeout)
        self._parser.reset()
        async with self._client().stream(
            "GET", "/devices/api/stream", headers=headers, timeout=timeout
        ) as response:
            if response.status_code == 401:
                if not self._unauthorized_logged:
                    log.error(MESSAGE_BAD_TOKEN)
                    self._unauthorized_logged = True
                return self.unauthorized_retry_seconds
            if response.status_code != 200:
                log.warning("event stream refused: HTTP %d", response.status_code)
                return None
            self._unauthorized_logged = False
            self._disconnect_logged = False
            async for line in response.aiter_lines():
                message = self._parser.feed(line)
                if message is not None:
                    await self._on_message(message)
            return None

    async def _on_message(self, message: SseMessage) -> None:
        try:
            data = json.loads(message.data) if message.data else {}
        except json.JSONDecodeError:
            log.warning("event %r with data that is not JSON; ignored", message.event)
            return
        if message.event == "hello":
            self.generation += 1
            self.connected = True
            device = data.get("device") if isinstance(data, dict) else None
            self.device = device if isinstance(device, dict) else {}
            log.info(
                "connected to the server as %s %s",
                self.device.get("code", "?"),
                self.device.get("name", ""),
            )
            self._resend_now.set()
        elif message.event == "job":
            await self._on_job(data)
        elif message.event == "cancel":
            await self._on_cancel(data)
        elif message.event == "command":
            await self._on_command(data)
        else:
            log.debug("event %r ignored", message.event)

    async def _on_job(self, data: Any) -> None:
        try:
            order = PrintOrder.parse(data)
        except ValueError as exc:
            log.warning("a job that can't be read was ignored: %s", exc)
            return
        order.generation = self.generation
        known = self._pending.get(order.key)
        if known is not None:
            known.generation = self.generation  # confirmed unfinished on this connection
            return
        entry = self._journal().get(order.id, order.attempt)
        # Known already: report the outcome again. Office jobs CUPS may have (sending) or may
        # still be printing (sent) go to the worker, which asks CUPS.
        known_outcome = entry is not None and entry.state is not JournalState.RECEIVED
        if (
            entry is not None
            and known_outcome
            and not (order.printer == "office" and entry.state in _OFFICE_RESUMES)
        ):
            self._spawn(self._settle(order, entry), f"settle:{order.id}")
            return
        queue = self._queues.get(order.printer)
        if queue is None:
            reason = MESSAGE_NO_PRINTER.format(printer=PRINTER_NAMES.get(order.printer, order.printer))
            self._spawn(self._fail(order, reason), f"fail:{order.id}")
            return
        self._pending[order.key] = order
        queue.put_nowait(order)

    async def _on_cancel(self, data: Any) -> None:
        key = job_key(data)
        if key is None:
            return
        order = self._pending.get(key)
        printer = order.printer if order is not None else ""
        cancelled = await asyncio.to_thread(self._journal().cancel, key[0], key[1], printer)
        if order is not None:
            order.cancelled.set()
        if cancelled:
            log.info("job %d attempt %d cancelled before printing", *key)
            return
        entry = self._journal().get(*key)
        if (
            entry is not None
            and entry.printer == "office"
            and entry.state is JournalState.SENT
            and entry.cups_job_id
        ):
            self._spawn(self._cancel_in_cups(entry), f"cups-cancel:{key[0]}")
        else:
            log.info("job %d attempt %d: cancel came too late (already printing or printed)", *key)

    async def _cancel_in_cups(self, entry: Entry) -> None:
        printer = self.office_printer
        if printer is None or entry.cups_job_id is None:
            return
        try:
            await asyncio.to_thread(printer.cancel, entry.cups_job_id)
            log.info("job %d attempt %d cancelled in CUPS", entry.job_id, entry.attempt)
        except Exception as exc:
            log.info("job %d attempt %d: CUPS did not cancel it (%s)", entry.job_id, entry.attempt, exc)

    async def _on_command(self, data: Any) -> None:
        command = data.get("command") if isinstance(data, Mapping) else None
        if command == "light":
            state = data.get("state")
            if state not in ("on", "off"):
                log.warning("light command with state %r ignored", state)
                return
            if self.light is None:
                log.warning("light command, but no signal light is configured")
                return
            try:
                await asyncio.to_thread(self.light.set, state == "on")
                log.info("signal light %s", state)
            except LightUnavailable as exc:
                log.warning("signal light: %s", exc.reason)
        elif command == "card.authenticate":
            self._spawn(self._card_authenticate(data), "card-authenticate")
        elif command == "card.read_face":
            self._spawn(self._card_read_face(data), "card-read-face")
        elif command in ("heartbeat", "status"):
            self._heartbeat_wake.set()
        else:
            log.warning("unknown command %r ignored", command)  # the name only: payloads may be private

    async def _card_authenticate(self, data: Mapping[str, Any]) -> None:
        """The kiosk's card check: one PIN try, sign the nonce, answer the server. Never logs the PIN."""
        from device_bridge.kiosk_card import authenticate_card

        command_id = str(data.get("command_id", ""))
        reader = self.config.card_reader
        if reader is None or not reader.enabled:
            answer: dict[str, Any] = {"ok": False, "error": "reader"}
        else:
            try:
                nonce = bytes.fromhex(str(data.get("nonce", "")))
            except ValueError:
                nonce = b""
            answer = (
                await asyncio.to_thread(
                    authenticate_card, reader.reader or None, nonce, str(data.get("pin", ""))
                )
                if nonce
                else {"ok": False, "error": "reader"}
            )
        await self._answer_command("card check", command_id, answer)

    async def _card_read_face(self, data: Mapping[str, Any]) -> None:
        """Read the card face (券面事項入力補助AP): one PIN try, answer the server.

        Never logs the PIN or anything read from the card (only ok or the error code)."""
        from device_bridge.kiosk_card import read_face_card

        command_id = str(data.get("command_id", ""))
        reader = self.config.card_reader
        if reader is None or not reader.enabled:
            answer: dict[str, Any] = {"ok": False, "error": "reader"}
        else:
            answer = await asyncio.to_thread(read_face_card, reader.reader or None, str(data.get("pin", "")))
        await self._answer_command("card face read", command_id, answer)

    async def _answer_command(self, what: str, command_id: str, answer: Mapping[str, Any]) -> None:
        log.info("%s %s: %s", what, command_id[:8], "ok" if answer.get("ok") else answer.get("error"))
        try:
            await self._client().post(f"/devices/api/commands/{command_id}", json=dict(answer))
        except httpx.HTTPError as exc:
            log.warning(
                "%s %s: the server did not take the answer (%s)", what, command_id[:8], type(exc).__name__
            )

    # -- reporting --

    async def _report(self, job_id: int, attempt: int, state: str, reason: str = "") -> ReportResult:
        try:
            response = await self._client().post(
                f"/devices/api/jobs/{job_id}",
                json={"attempt": attempt, "state": state, "reason": reason[:255]},
            )
        except httpx.HTTPError as exc:
            log.debug("report %s for job %d failed: %s", state, job_id, type(exc).__name__)
            return ReportResult(Reply.UNREACHABLE)
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            return ReportResult(Reply.OK, str(body.get("state", "")) if isinstance(body, dict) else "")
        if response.status_code == 409:
            return ReportResult(Reply.STALE)
        if response.status_code == 404:
            return ReportResult(Reply.GONE)
        if response.status_code == 401:
            if not self._unauthorized_logged:
                log.error(MESSAGE_BAD_TOKEN)
                self._unauthorized_logged = True
            return ReportResult(Reply.UNAUTHORIZED)
        return ReportResult(Reply.UNREACHABLE)

    async def _report_final(self, job_id: int, attempt: int, state: str, reason: str = "") -> None:
        """Report done/failed; keep trying in the background until the server has it."""
        result = await self._report(job_id, attempt, state, reason)
        if result.reply in (Reply.OK, Reply.STALE, Reply.GONE):
            self._unsent.pop((job_id, attempt), None)
            await asyncio.to_thread(self._journal().mark_acked, job_id, attempt, state)
            if result.reply is not Reply.OK:
                log.info("job %d attempt %d: the server no longer wants this attempt", job_id, attempt)
        else:
            self._unsent[(job_id, attempt)] = (state, reason)
            self._unsent_wake.set()

    async def _resend_loop(self) -> None:
        """Final reports the server didn't take yet: again and again, backing off, until it does."""
        delay = 1.0
        while True:
            if not self._unsent:
                delay = 1.0
                self._unsent_wake.clear()
                await self._unsent_wake.wait()
                continue
            await self._sleep(delay, self._resend_now)
            self._resend_now.clear()
            progress = False
            for key, (state, reason) in list(self._unsent.items()):
                if key not in self._unsent:
                    continue
                await self._report_final(key[0], key[1], state, reason)
                if key in self._unsent:
                    break  # still unreachable: wait before trying the rest
                progress = True
            delay = 1.0 if progress else min(delay * 2, self.max_backoff_seconds)

    async def _fail(self, order: PrintOrder, reason: str) -> None:
        await asyncio.to_thread(self._journal().mark_failed, order.id, order.attempt, order.printer, reason)
        log.warning("%s failed: %s", order.label, reason)
        await self._report_final(order.id, order.attempt, "failed", reason)

    async def _settle(self, order: PrintOrder, entry: Entry) -> None:
        """A redelivered job the journal already knows: report its outcome again, print nothing."""
        state = entry.state
        if state in (JournalState.SENT, JournalState.ACKED):
            await self._report_final(order.id, order.attempt, "done")
        elif state is JournalState.SENDING:
            # The bridge died between starting and confirming; a receipt printer can't be asked.
            await asyncio.to_thread(self._journal().mark_ambiguous, order.id, order.attempt)
            log.warning("%s: may or may not have printed before a crash; not printed again", order.label)
            await self._report_final(order.id, order.attempt, "failed", AMBIGUOUS_REASON)
        elif state in (JournalState.AMBIGUOUS, JournalState.FAILED):
            await self._report_final(order.id, order.attempt, "failed", entry.reason or AMBIGUOUS_REASON)
        else:
            log.debug("%s was cancelled here; ignored", order.label)

    async def _still_wanted(self, order: PrintOrder) -> bool:
        """For a job from before a reconnect: ask the server whether it still wants it."""
        if order.generation == self.generation and self.connected:
            return True
        result = await self._report(order.id, order.attempt, "delivered")
        if result.drop:
            await asyncio.to_thread(self._journal().cancel, order.id, order.attempt, order.printer)
            log.info("%s: no longer wanted by the server; dropped", order.label)
            return False
        order.generation = self.generation
        return True

    async def _waiting(
        self, order: PrintOrder, reason: str, last: tuple[str, float]
    ) -> tuple[str, float] | None:
        """The printer can't print: tell staff why, wait, and ask the server again before retrying.

        The report goes out at once when the reason changes, and again after every wait: that
        one is also the check that the job is still wanted (a cancel may have been missed while
        the connection was down). None when the server says it no longer is.
        """
        if reason != last[0]:
            log.info("%s waits: %s", order.label, reason)
            if await self._drop_if_unwanted(order, reason):
                return None
        await self._sleep(self.config.retry_seconds, order.cancelled)
        if order.cancelled.is_set() or self._stop.is_set():
            return (reason, time.monotonic())
        if await self._drop_if_unwanted(order, reason):
            return None
        return (reason, time.monotonic())

    async def _drop_if_unwanted(self, order: PrintOrder, reason: str) -> bool:
        result = await self._report(order.id, order.attempt, "delivered", reason)
        if not result.drop:
            return False
        await asyncio.to_thread(self._journal().cancel, order.id, order.attempt, order.printer)
        log.info("%s: no longer wanted by the server; dropped", order.label)
        return True

    # -- printer workers --

    async def _worker(self, printer: str) -> None:
        queue = self._queues[printer]
        while True:
            order = await queue.get()
            try:
                if order.cancelled.is_set() or self._stop.is_set():
                    continue
                if printer == "receipt":
                    await self._print_receipt(order)
                else:
                    await self._print_office(order)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "%s: unexpected error; it is tried again when the server redelivers it", order.label
                )
            finally:
                self._pending.pop(order.key, None)

    async def _print_receipt(self, order: PrintOrder) -> None:
        printer = self.receipt_printer
        assert printer is not None
        from device_bridge.drivers.office import PrinterUnavailable
        from device_bridge.drivers.receipt import build_receipt_bytes

        try:
            receipt = receipt_from_payload(order.payload)
            data = await asyncio.to_thread(
                build_receipt_bytes,
                receipt,
                printer.width,
                font_path=printer.font_path,
                native_qr=printer.native_qr,
                text_mode=printer.config.text,
            )
        except (ValueError, TypeError) as exc:
            await self._fail(order, MESSAGE_BAD_JOB.format(detail=exc))
            return
        data *= order.copies
        if not await self._still_wanted(order):
            return
        last: tuple[str, float] | None = ("", 0.0)
        while last is not None:
            if self._stop.is_set() or order.cancelled.is_set():
                return
            try:
                outcome = await self._in_thread(send_receipt, printer, data, self._journal(), order)
            except (NotSent, PrinterUnavailable) as exc:
                last = await self._waiting(order, exc.reason, last)
                continue
            if outcome is SendOutcome.SENT:
                await self._report_final(order.id, order.attempt, "done")
            elif outcome is SendOutcome.AMBIGUOUS:
                await self._report_final(order.id, order.attempt, "failed", AMBIGUOUS_REASON)
            return

    async def _download(self, order: PrintOrder) -> bytes | ReportResult:
        try:
            response = await self._client().get(f"/devices/api/jobs/{order.id}/document")
        except httpx.HTTPError:
            return ReportResult(Reply.UNREACHABLE)
        if response.status_code == 200:
            return response.content
        if response.status_code == 404:
            return ReportResult(Reply.GONE)
        if response.status_code == 401:
            return ReportResult(Reply.UNAUTHORIZED)
        return ReportResult(Reply.UNREACHABLE)

    async def _print_office(self, order: PrintOrder) -> None:
        printer = self.office_printer
        office = self.config.office
        assert printer is not None and office is not None
        from device_bridge.drivers.office import PrinterUnavailable

        duplex = order.options.get("duplex", office.duplex)
        tray = order.options.get("tray", office.tray)
        if duplex not in (None, "long", "short", "off") or (tray is not None and not isinstance(tray, str)):
            await self._fail(order, MESSAGE_BAD_JOB.format(detail="duplex / tray"))
            return
        pdf: bytes | None = None
        last: tuple[str, float] | None = ("", 0.0)
        checked = False
        while last is not None:
            if self._stop.is_set() or order.cancelled.is_set():
                return
            entry = self._journal().get(order.id, order.attempt)
            state = entry.state if entry is not None else JournalState.RECEIVED
            if state in (JournalState.SENT, JournalState.ACKED):
                assert entry is not None
                await self._follow_office(order, entry.cups_job_id)
                return
            if state is JournalState.SENDING:
                # Died between lp and its answer: CUPS knows whether it took the job.
                try:
                    found = await self._in_thread(printer.find_job, job_title(order.id, order.attempt))
                except PrinterUnavailable as exc:
                    last = await self._waiting(order, exc.reason, last)
                    continue
                if found is not None:
                    await asyncio.to_thread(self._journal().mark_sent, order.id, order.attempt, found)
                else:
                    await asyncio.to_thread(self._journal().back_to_received, order.id, order.attempt)
                continue
            if state is not JournalState.RECEIVED:
                assert entry is not None
                await self._settle(order, entry)
                return
            if not checked:
                if not await self._still_wanted(order):
                    return
                checked = True
            if pdf is None:
                got = await self._download(order)
                if isinstance(got, ReportResult):
                    if got.reply is Reply.GONE:
                        await self._fail(order, MESSAGE_NO_DOCUMENT.format(detail="404"))
                        return
                    last = await self._waiting(
                        order, MESSAGE_NO_DOCUMENT.format(detail=got.reply.value), last
                    )
                    continue
                pdf = got
            try:
                await self._in_thread(
                    functools.partial(submit_office, duplex=duplex, tray=tray),
                    printer,
                    pdf,
                    self._journal(),
                    order,
                )
            except (NotSent, PrinterUnavailable) as exc:
                last = await self._waiting(order, exc.reason, last)
            except ValueError as exc:
                await asyncio.to_thread(self._journal().back_to_received, order.id, order.attempt)
                await self._fail(order, MESSAGE_BAD_JOB.format(detail=exc))
                return

    async def _follow_office(self, order: PrintOrder, cups_job_id: int | None) -> None:
        """CUPS has the job: report printing while it is not finished, then done / failed when CUPS
        finishes it. A job finished at the first look (after a short wait) is only reported done:
        staff would not see 印刷中 for that long, and it spares the server a report."""
        printer = self.office_printer
        assert printer is not None
        from device_bridge.drivers.office import JobNotFound, JobState, PrinterUnavailable

        if cups_job_id is None:
            await self._report_final(order.id, order.attempt, "done")
            return
        reason = ""
        polls = 0
        printing_reported = False
        await self._sleep(min(0.05, self.config.retry_seconds))
        while not self._stop.is_set():
            try:
                status = await self._in_thread(printer.job_state, cups_job_id)
            except JobNotFound:
                break  # purged from CUPS's history: it finished
            except PrinterUnavailable as exc:
                log.debug("%s: CUPS not answering (%s)", order.label, exc.reason)
            else:
                if status.state is JobState.COMPLETED:
                    break
                if status.state in (JobState.CANCELLED, JobState.ABORTED):
                    await self._report_final(order.id, order.attempt, "failed", MESSAGE_CUPS_CANCELLED)
                    return
            if not printing_reported:
                printing_reported = True
                result = await self._report(order.id, order.attempt, "printing")
                if result.reply in (Reply.STALE, Reply.GONE):
                    await self._cancel_in_cups(
                        Entry(order.id, order.attempt, "office", JournalState.SENT, cups_job_id=cups_job_id)
                    )
                    await asyncio.to_thread(self._journal().mark_acked, order.id, order.attempt, "cancelled")
                    return
            polls += 1
            if polls % 10 == 0:  # still not printed: say why, if the queue knows
                try:
                    queue = await self._in_thread(printer.queue_status)
                    now = queue.staff_reason() or "、".join(queue.reasons)
                except PrinterUnavailable as exc:
                    now = exc.reason
                if now != reason:
                    reason = now
                    await self._report(order.id, order.attempt, "printing", reason)
            # Not woken by a cancel: a cancelled job is cancelled in CUPS and shows up as such here.
            # Short waits first (most jobs finish within a fraction of a second), then up to 1 s.
            await self._sleep(min(0.05 * 2 ** min(polls, 5), 1.0, self.config.retry_seconds))
        else:
            return  # stopping: CUPS keeps the job; the next run follows it again
        await self._report_final(order.id, order.attempt, "done")

    # -- heartbeat --

    def _collect_status(self) -> dict[str, Any]:
        from device_bridge.drivers.office import PrinterUnavailable

        printers: dict[str, Any] = {}
        if self.receipt_printer is not None:
            try:
                st = self.receipt_printer.status()
                printers["receipt"] = {
                    "online": st.online,
                    "paper_out": st.paper_out,
                    "cover_open": st.cover_open,
                    "reason": st.reason or "、".join(st.warnings),
                }
            except PrinterUnavailable as exc:
                printers["receipt"] = {
                    "online": False,
                    "paper_out": False,
                    "cover_open": False,
                    "reason": exc.reason,
                }
        if self.office_printer is not None:
            try:
                qs = self.office_printer.queue_status()
                reasons = " ".join(qs.reasons)
                printers["office"] = {
                    "online": qs.can_print,
                    "paper_out": "media-empty" in reasons or "media-needed" in reasons,
                    "cover_open": "cover-open" in reasons or "door-open" in reasons,
                    "reason": qs.staff_reason(),
                }
            except PrinterUnavailable as exc:
                printers["office"] = {
                    "online": False,
                    "paper_out": False,
                    "cover_open": False,
                    "reason": exc.reason,
                }
        status: dict[str, Any] = {"printers": printers, "version": self.version}
        reader = self.config.card_reader
        if reader is not None and reader.enabled:
            watcher = self._card_watcher
            present = watcher is not None and watcher.reader is not None
            status["card_reader"] = {
                "present": present,
                "card": present and self._card_present,
                "reason": "" if present else (self._card_reason or MESSAGE_NO_READER),
            }
        scanner = self.scanner
        if scanner is not None:
            connected = scanner.connected
            status["scanner"] = {
                "present": connected,
                "reason": "" if connected else (scanner.reason or MESSAGE_NO_SCANNER),
            }
        return status

    async def _heartbeat_loop(self) -> None:
        while True:
            status = await self._in_thread(self._collect_status)
            self.last_status = status
            try:
                response = await self._client().post("/devices/api/heartbeat", json={"status": status})
                if response.status_code == 401 and not self._unauthorized_logged:
                    log.error(MESSAGE_BAD_TOKEN)
                    self._unauthorized_logged = True
            except httpx.HTTPError as exc:
                log.debug("heartbeat failed: %s", type(exc).__name__)
            self._heartbeat_wake.clear()
            await self._sleep(self.config.heartbeat_seconds, self._heartbeat_wake)

    # -- card reader --

    def _start_card_watcher(self) -> None:
        reader = self.config.card_reader
        assert reader is not None
        loop = asyncio.get_running_loop()

        def on_event(event: Any) -> None:  # called from the watcher's thread
            loop.call_soon_threadsafe(self._on_card_event, event)

        factory = self._card_watcher_factory
        try:
            if factory is None:
                from device_bridge.drivers.pcsc import PresenceWatcher

                factory = PresenceWatcher
            self._card_watcher = factory(on_event, reader.reader or None)
        except Exception as exc:  # pyscard missing or libpcsclite not installed
            self._card_reason = MESSAGE_NO_PCSC
            log.warning("card reader unavailable: %s", type(exc).__name__)

    def _on_card_event(self, event: Any) -> None:
        name = type(event).__name__
        reader = str(getattr(event, "reader", "") or "")
        if name == "CardInserted":
            self._card_present = True
            atr = getattr(event, "atr", b"")
            item = ("card_inserted", {"reader": reader, "atr": atr.hex() if isinstance(atr, bytes) else ""})
        elif name == "CardRemoved":
            self._card_present = False
            item = ("card_removed", {"reader": reader})
        else:
            return
        try:
            self._events.put_nowait((*item, time.monotonic()))
        except asyncio.QueueFull:
            log.warning("card events are piling up; one dropped")
        self._heartbeat_wake.set()

    # -- scanner --

    def _start_scanner(self) -> None:
        scanner = self.scanner
        assert scanner is not None
        loop = asyncio.get_running_loop()

        def on_scan(text: str) -> None:  # called from the scanner's thread
            loop.call_soon_threadsafe(self._on_scan, text)

        scanner.start(on_scan)

    def _on_scan(self, text: str) -> None:
        # Never the text itself in the log: a scanned code may carry personal data.
        log.debug("scan of %d characters", len(text))
        try:
            self._events.put_nowait(("scan", {"text": text}, time.monotonic()))
        except asyncio.QueueFull:
            log.warning("device events are piling up; a scan was dropped")

    async def _event_loop(self) -> None:
        """Card and scan events to the server, in order; retried for a while when it can't be reached."""
        while True:
            kind, data, queued = await self._events.get()
            for attempt in range(5):
                if kind == "scan" and time.monotonic() - queued > SCAN_MAX_AGE_SECONDS:
                    log.warning("a scan could not be sent to the server in time; dropped")
                    break
                if await self.send_event(kind, data):
                    break
                await self._sleep(min(2.0**attempt, 10.0))
            else:
                log.warning("a %s event could not be sent to the server; dropped", kind)

    async def send_event(self, kind: str, data: Mapping[str, Any]) -> bool:
        """POST /devices/api/events; True when the server took it (202)."""
        try:
            response = await self._client().post(
                "/devices/api/events", json={"type": kind, "data": dict(data)}
            )
        except httpx.HTTPError:
            return False
        return response.status_code in (200, 202)


def make_light(config: LightConfig) -> SignalLight:
    if config.kind == "simulated":
        return SimulatedLight(config.state_file)
    return SerialLight(config.device, config.on, config.off, baudrate=config.baudrate)


def make_scanner(config: ScannerConfig) -> Scanner:
    from device_bridge.drivers.scanner import SerialScanner

    return SerialScanner(
        config.device,
        config.baudrate,
        config.terminator,
        encoding=config.encoding,
        prefix=config.prefix,
        suffix=config.suffix,
    )


# --- entry points ------------------------------------------------------------------------------


async def run_bridge(config: BridgeConfig, *, stop: asyncio.Event | None = None, **kwargs: Any) -> None:
    """Run the bridge until SIGTERM/SIGINT (or ``stop`` is set)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
    try:
        await Bridge(config, **kwargs).run(stop)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """python-escpos logs every connection on the root logger at INFO; keep its warnings only."""
    return not (record.name == "root" and record.levelno < logging.WARNING and "escpos" in record.pathname)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_quiet_libraries)
    # force: a library may already have configured the root logger by logging at import.
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
    # httpx logs every request at INFO; the bridge says what matters itself.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """``madoguchi bridge --config bridge.toml``; exit 2 on a configuration error."""
    parser = argparse.ArgumentParser(
        prog="madoguchi bridge",
        description="Madoguchi device bridge: printers, card reader, scanner, signal light.",
    )
    parser.add_argument("--config", required=True, help="the bridge's TOML file")
    parser.add_argument(
        "--log-level", default=None, help="debug, info, warning or error (overrides the file)"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    _setup_logging(args.log_level or config.log_level)
    try:
        asyncio.run(run_bridge(config))
    except (ValueError, FileNotFoundError) as exc:  # a driver refusing its settings (or font) at start
        print(f"設定エラー / config error: {exc}", file=sys.stderr)
        return 2
    return 0
