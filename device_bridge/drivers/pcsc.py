"""PC/SC card readers through pyscard (pcsc-lite on Linux, WinSCard on Windows).

`PcscReader` finds a reader, waits for a card to come or go (SCardGetStatusChange: blocking,
never a busy loop), and opens a `PcscTransport` (T=1) that implements `ApduTransport`.
`PresenceWatcher` reports CardInserted / CardRemoved events from its own thread.

Errors are mapped once, here: a card that left the reader (SCARD_W_REMOVED_CARD,
SCARD_E_NO_SMARTCARD, SCARD_E_NOT_TRANSACTED while it is being pulled out, …) is
`CardRemovedError`; pcscd missing or no matching reader is `ReaderUnavailable`.

pyscard has no type information; its calls are wrapped in the small typed functions below.
Contexts are not shared between threads: each PcscReader and each PresenceWatcher has its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from smartcard import scard as _scard  # type: ignore[import-untyped]

from device_bridge.drivers.apdu import CardError, CardRemovedError, UnsupportedCard

__all__ = [
    "CardEvent",
    "CardInserted",
    "CardRemoved",
    "PcscReader",
    "PcscTransport",
    "PresenceWatcher",
    "ReaderBusy",
    "ReaderUnavailable",
    "list_readers",
    "pcscd_running",
]

log = logging.getLogger(__name__)

MESSAGE_NO_READER = "カードリーダーが見つかりません。職員にお声がけください。"
MESSAGE_READER_BUSY = "カードリーダーは使用中です。しばらくお待ちください。"

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"

# pyscard's constants, typed once.
_S: Any = _scard
SCARD_S_SUCCESS = 0
E_CANCELLED: int = _S.SCARD_E_CANCELLED
E_TIMEOUT: int = _S.SCARD_E_TIMEOUT
E_NO_READERS: int = _S.SCARD_E_NO_READERS_AVAILABLE
E_NO_SERVICE: int = _S.SCARD_E_NO_SERVICE
E_SERVICE_STOPPED: int = _S.SCARD_E_SERVICE_STOPPED
E_INVALID_HANDLE: int = _S.SCARD_E_INVALID_HANDLE
E_UNKNOWN_READER: int = _S.SCARD_E_UNKNOWN_READER
E_READER_UNAVAILABLE: int = _S.SCARD_E_READER_UNAVAILABLE
E_SHARING_VIOLATION: int = _S.SCARD_E_SHARING_VIOLATION
E_PROTO_MISMATCH: int = _S.SCARD_E_PROTO_MISMATCH
E_NO_SMARTCARD: int = _S.SCARD_E_NO_SMARTCARD
E_NOT_TRANSACTED: int = _S.SCARD_E_NOT_TRANSACTED
E_COMM_DATA_LOST: int = _S.SCARD_E_COMM_DATA_LOST
W_REMOVED_CARD: int = _S.SCARD_W_REMOVED_CARD
W_RESET_CARD: int = _S.SCARD_W_RESET_CARD
W_UNPOWERED_CARD: int = _S.SCARD_W_UNPOWERED_CARD
W_UNRESPONSIVE_CARD: int = _S.SCARD_W_UNRESPONSIVE_CARD
W_UNSUPPORTED_CARD: int = _S.SCARD_W_UNSUPPORTED_CARD
STATE_UNAWARE: int = _S.SCARD_STATE_UNAWARE
STATE_CHANGED: int = _S.SCARD_STATE_CHANGED
STATE_UNKNOWN: int = _S.SCARD_STATE_UNKNOWN
STATE_UNAVAILABLE: int = _S.SCARD_STATE_UNAVAILABLE
STATE_PRESENT: int = _S.SCARD_STATE_PRESENT
STATE_MUTE: int = _S.SCARD_STATE_MUTE
PROTOCOL_T1: int = _S.SCARD_PROTOCOL_T1
INFINITE: int = _S.INFINITE

# The card went away (or stopped answering) under a command.
_CARD_GONE = frozenset(
    {W_REMOVED_CARD, W_RESET_CARD, W_UNPOWERED_CARD, W_UNRESPONSIVE_CARD, E_NO_SMARTCARD, E_NOT_TRANSACTED,
     E_COMM_DATA_LOST, E_READER_UNAVAILABLE}
)  # fmt: skip
# pcscd stopped or restarted: the context must be established again.
_SERVICE_GONE = frozenset({E_NO_SERVICE, E_SERVICE_STOPPED, E_INVALID_HANDLE})


class ReaderUnavailable(CardError):
    """pcscd is not running, or no reader matches the filter."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(MESSAGE_NO_READER, detail=detail)


class ReaderBusy(CardError):
    """Another program holds the card exclusively."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(MESSAGE_READER_BUSY, detail=detail)


@dataclass(frozen=True, slots=True)
class CardInserted:
    reader: str
    atr: bytes


@dataclass(frozen=True, slots=True)
class CardRemoved:
    reader: str


CardEvent = CardInserted | CardRemoved


# -- the typed layer over pyscard ----------------------------------------------------------------


def _hr(value: Any) -> int:
    return int(value) & 0xFFFFFFFF  # WinSCard codes may come back signed


def _message(hr: int) -> str:
    try:
        return f"{hr:08X} {_S.SCardGetErrorMessage(hr)}"
    except Exception:  # pragma: no cover - pyscard without the helper
        return f"{hr:08X}"


def _raise_for(hr: int, what: str) -> None:
    if hr == SCARD_S_SUCCESS:
        return
    detail = f"{what}: {_message(hr)}"
    if hr in _CARD_GONE:
        raise CardRemovedError(detail=detail)
    if hr in _SERVICE_GONE or hr in (E_NO_READERS, E_UNKNOWN_READER):
        raise ReaderUnavailable(detail)
    if hr == E_SHARING_VIOLATION:
        raise ReaderBusy(detail)
    if hr in (E_PROTO_MISMATCH, W_UNSUPPORTED_CARD):
        raise UnsupportedCard(detail)
    raise CardError(detail=detail)


def _establish_context() -> int:
    result = _S.SCardEstablishContext(_S.SCARD_SCOPE_USER)
    _raise_for(_hr(result[0]), "SCardEstablishContext")
    return cast(int, result[1])


def _release_context(context: int) -> None:
    _S.SCardReleaseContext(context)


def _list_readers(context: int) -> tuple[int, list[str]]:
    result = _S.SCardListReaders(context, [])
    hr = _hr(result[0])
    return hr, [str(name) for name in result[1]] if hr == SCARD_S_SUCCESS else []


def _get_status_change(
    context: int, timeout_ms: int, states: list[tuple[str, int]]
) -> tuple[int, list[tuple[str, int, bytes]]]:
    result = _S.SCardGetStatusChange(context, timeout_ms, states)
    hr = _hr(result[0])
    if hr != SCARD_S_SUCCESS:
        return hr, []
    return hr, [(str(name), int(state), bytes(atr)) for name, state, atr in result[1]]


def _cancel(context: int) -> None:
    _S.SCardCancel(context)


def _timeout_ms(seconds: float | None) -> int:
    if seconds is None:
        return INFINITE
    return max(0, min(int(seconds * 1000), INFINITE - 1))


def _is_present(state: int) -> bool:
    return bool(state & STATE_PRESENT) and not state & STATE_MUTE


def pcscd_running() -> bool:
    """True if the PC/SC service answers (a context can be established)."""
    try:
        context = _establish_context()
    except CardError:
        return False
    _release_context(context)
    return True


def list_readers() -> list[str]:
    """All PC/SC reader names ([] if pcscd is down or there are none)."""
    try:
        context = _establish_context()
    except CardError:
        return []
    try:
        return _list_readers(context)[1]
    finally:
        _release_context(context)


# -- transport -----------------------------------------------------------------------------------


class PcscTransport:
    """An open connection to the card in one reader; implements ApduTransport."""

    def __init__(self, handle: int, protocol: int, reader: str) -> None:
        self._handle: int | None = handle
        self.protocol = protocol
        self.reader = reader

    def transmit(self, apdu: bytes | bytearray) -> bytes:
        # pyscard wants a list of ints; it is dropped as soon as the call returns.
        if self._handle is None:
            raise CardRemovedError(detail="transport is closed")
        result = _S.SCardTransmit(self._handle, self.protocol, list(apdu))
        _raise_for(_hr(result[0]), "SCardTransmit")
        response = bytes(result[1])
        if len(response) < 2:  # vpcd answers nothing when its card vanished mid-command
            raise CardRemovedError(detail=f"response without status word ({len(response)} bytes)")
        return response

    @property
    def atr(self) -> bytes:
        if self._handle is None:
            raise CardRemovedError(detail="transport is closed")
        result = _S.SCardStatus(self._handle)
        _raise_for(_hr(result[0]), "SCardStatus")
        return bytes(result[4])

    @property
    def closed(self) -> bool:
        return self._handle is None

    def disconnect(self, *, reset: bool = True) -> None:
        """Close the connection. reset=True (default) resets the card so no verified PIN outlives us."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        disposition = _S.SCARD_RESET_CARD if reset else _S.SCARD_LEAVE_CARD
        hr = _hr(_S.SCardDisconnect(handle, disposition))
        if hr not in (SCARD_S_SUCCESS, *_CARD_GONE, *_SERVICE_GONE):
            log.warning("SCardDisconnect: %s", _message(hr))

    def __enter__(self) -> PcscTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


# -- reader --------------------------------------------------------------------------------------


class PcscReader:
    """One reader, chosen by a substring of its name (None: the first reader).

    Methods are for one thread; `cancel()` may be called from another to end a wait.
    """

    def __init__(self, name_filter: str | None = None) -> None:
        self.name_filter = name_filter
        self._context: int | None = None
        self._transport: PcscTransport | None = None

    def __enter__(self) -> PcscReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.disconnect()
        context, self._context = self._context, None
        if context is not None:
            _release_context(context)

    def _ctx(self) -> int:
        if self._context is None:
            self._context = _establish_context()
        return self._context

    def _drop_context(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            _release_context(context)

    # -- readers -------------------------------------------------------------------------------
    def list_readers(self) -> list[str]:
        """All reader names; re-establishes the context once if pcscd restarted."""
        for attempt in range(2):
            hr, names = _list_readers(self._ctx())
            if hr in _SERVICE_GONE and attempt == 0:
                self._drop_context()
                continue
            if hr in (SCARD_S_SUCCESS, E_NO_READERS):
                return names
            _raise_for(hr, "SCardListReaders")
        return []

    def _matching(self, names: list[str]) -> str | None:
        for name in names:
            if self.name_filter is None or self.name_filter in name:
                return name
        return None

    @property
    def reader_name(self) -> str:
        name = self._matching(self.list_readers())
        if name is None:
            raise ReaderUnavailable(f"no reader matches {self.name_filter!r}")
        return name

    # -- presence ------------------------------------------------------------------------------
    def card_present(self) -> bool:
        hr, states = _get_status_change(self._ctx(), 0, [(self.reader_name, STATE_UNAWARE)])
        _raise_for(hr, "SCardGetStatusChange")
        return _is_present(states[0][1])

    def _wait(self, want_present: bool, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        state = STATE_UNAWARE
        reader: str | None = None
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if reader is None:
                reader = self._matching(self.list_readers())
                if reader is None:
                    if not self._wait_for_readers(remaining):
                        return False
                    continue
                state = STATE_UNAWARE
            wait_ms = 0 if state == STATE_UNAWARE else _timeout_ms(remaining)
            hr, states = _get_status_change(self._ctx(), wait_ms, [(reader, state)])
            if hr in (E_TIMEOUT, E_CANCELLED):
                return False
            if hr in (E_UNKNOWN_READER, E_READER_UNAVAILABLE):
                reader = None
                continue
            if hr in _SERVICE_GONE:
                self._drop_context()
                reader = None
                continue
            _raise_for(hr, "SCardGetStatusChange")
            event = states[0][1]
            if event & (STATE_UNKNOWN | STATE_UNAVAILABLE):
                if not want_present:
                    return True  # the reader (and the card with it) went away
                reader = None
                continue
            if _is_present(event) == want_present:
                return True
            if remaining is not None and remaining <= 0:
                return False
            state = event & ~STATE_CHANGED

    def _wait_for_readers(self, timeout: float | None) -> bool:
        """Block until the set of readers changes (PnP notification), or the timeout."""
        context = self._ctx()
        hr, states = _get_status_change(context, 0, [(PNP_NOTIFICATION, STATE_UNAWARE)])
        if hr != SCARD_S_SUCCESS:
            # No PnP support: wait the timeout out in small, blocking steps.
            time.sleep(min(timeout if timeout is not None else 1.0, 1.0))
            return timeout is None or timeout > 1.0
        hr, _ = _get_status_change(context, _timeout_ms(timeout), [(PNP_NOTIFICATION, states[0][1])])
        return hr == SCARD_S_SUCCESS

    def wait_for_card(self, timeout: float | None = None) -> bool:
        """True once a (responsive) card is in the reader; False on timeout or cancel()."""
        return self._wait(True, timeout)

    def wait_for_removal(self, timeout: float | None = None) -> bool:
        """True once the reader is empty; False on timeout or cancel()."""
        return self._wait(False, timeout)

    def cancel(self) -> None:
        """End a wait_for_card/wait_for_removal running in another thread (only one already waiting)."""
        if self._context is not None:
            _cancel(self._context)

    def watch(self, callback: Callable[[CardEvent], None]) -> PresenceWatcher:
        """Start a PresenceWatcher on this reader's filter; stop() it when done."""
        return PresenceWatcher(callback, self.name_filter)

    # -- connection ----------------------------------------------------------------------------
    def connect(self, *, exclusive: bool = True) -> PcscTransport:
        """Connect to the card with T=1. Exclusive by default: nobody else may talk to the card
        while a PIN is verified. A previous connection from this reader is closed first."""
        self.disconnect()
        reader = self.reader_name
        share = _S.SCARD_SHARE_EXCLUSIVE if exclusive else _S.SCARD_SHARE_SHARED
        result = _S.SCardConnect(self._ctx(), reader, share, PROTOCOL_T1)
        _raise_for(_hr(result[0]), f"SCardConnect({reader})")
        self._transport = PcscTransport(cast(int, result[1]), cast(int, result[2]), reader)
        return self._transport

    def disconnect(self, *, reset: bool = True) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.disconnect(reset=reset)


# -- presence watcher ----------------------------------------------------------------------------


class PresenceWatcher:
    """Calls `callback(CardInserted | CardRemoved)` from a thread on every change in one reader.

    The first event reports the current state if a card is already in. Survives the reader being
    unplugged and pcscd restarting. The callback must be quick (hand work to a queue).
    """

    def __init__(self, callback: Callable[[CardEvent], None], name_filter: str | None = None) -> None:
        self.callback = callback
        self.name_filter = name_filter
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._context: int | None = None
        self.reader: str | None = None
        self._thread = threading.Thread(target=self._run, name="pcsc-presence", daemon=True)
        self._thread.start()

    def __enter__(self) -> PresenceWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        # SCardCancel only ends a wait that has begun, so repeat it until the thread is out.
        while self._thread.is_alive() and time.monotonic() < deadline:
            with self._lock:
                if self._context is not None:
                    _cancel(self._context)
            self._thread.join(0.05)

    def _emit(self, event: CardEvent) -> None:
        try:
            self.callback(event)
        except Exception:
            log.exception("presence callback failed")

    def _run(self) -> None:
        present = False
        try:
            while not self._stop.is_set():
                try:
                    with self._lock:
                        if self._context is None:
                            self._context = _establish_context()
                    present = self._watch(self._context, present)
                except CardError as error:
                    log.debug("presence watcher: %s", error)
                with self._lock:
                    if self._context is not None:
                        _release_context(self._context)
                        self._context = None
                self._stop.wait(1.0)  # pcscd down or restarting
        finally:
            with self._lock:
                if self._context is not None:
                    _release_context(self._context)
                    self._context = None

    def _watch(self, context: int, present: bool) -> bool:
        """Follow the reader until pcscd goes away (returns) or stop(). Returns the last presence."""
        state = STATE_UNAWARE
        reader: str | None = None
        while not self._stop.is_set():
            if reader is None:
                hr, names = _list_readers(context)
                if hr in _SERVICE_GONE:
                    return present
                reader = next((n for n in names if self.name_filter is None or self.name_filter in n), None)
                self.reader = reader
                if reader is None:
                    if present:
                        present = False
                        self._emit(CardRemoved(self.reader or ""))
                    hr, states = _get_status_change(context, 0, [(PNP_NOTIFICATION, STATE_UNAWARE)])
                    if hr != SCARD_S_SUCCESS:
                        return present
                    hr, _ = _get_status_change(context, INFINITE, [(PNP_NOTIFICATION, states[0][1])])
                    if hr in _SERVICE_GONE:
                        return present
                    continue
                state = STATE_UNAWARE
            hr, states = _get_status_change(context, INFINITE, [(reader, state)])
            if hr in (E_CANCELLED, E_TIMEOUT):
                continue
            if hr in _SERVICE_GONE:
                return present
            if hr != SCARD_S_SUCCESS:
                log.debug("presence watcher: %s", _message(hr))
                reader = None
                self._stop.wait(0.5)  # an unexpected error must not become a busy loop
                continue
            _, event, atr = states[0]
            if event & (STATE_UNKNOWN | STATE_UNAVAILABLE):
                if present:
                    present = False
                    self._emit(CardRemoved(reader))
                reader = None
                continue
            now_present = _is_present(event)
            # The high word counts card events: a quick remove + insert between two calls
            # still shows up as a jump of 2 or more.
            missed = state != STATE_UNAWARE and ((event >> 16) - (state >> 16)) & 0xFFFF >= 2
            if present and (not now_present or missed):
                self._emit(CardRemoved(reader))
                present = False
            if now_present and not present:
                self._emit(CardInserted(reader, atr))
                present = True
            state = event & ~STATE_CHANGED
        return present
