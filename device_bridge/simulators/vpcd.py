"""Plug a simulated card into pcscd through vsmartcard's vpcd reader driver.

vpcd (Debian: vsmartcard-vpcd) listens on 127.0.0.1:35963 for reader "Virtual PCD 00 00"
(35964 for "Virtual PCD 00 01"); the virtual card connects to it. Each message, both ways, is a
2-byte big-endian length and a payload. From vpcd, a 1-byte payload is a control message —
00 power off, 01 power on, 02 reset (no reply), 04 get ATR (reply: the ATR) — and anything longer
is a command APDU, answered with the response APDU (data + SW1 SW2).

pcscd polls presence by asking for the ATR every few hundred milliseconds. A card is "in the
reader" while this link holds a connection: `remove()` closes it (vpcd then reports the card
absent), `insert()` connects again. If pcscd restarts, the link reconnects by itself.

Debian's own `vicc` cannot be used (its Python package is installed off sys.path, see the
design note §6), hence this small client.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from device_bridge.drivers.apdu import CardError
from device_bridge.drivers.pcsc import list_readers, pcscd_running

__all__ = ["VPCD_PORT", "PcscdUnavailable", "VirtualCard", "VpcdLink", "running_pcscd", "vpcd_reader_name"]

log = logging.getLogger(__name__)

VPCD_PORT = 35963  # slot 0 ("Virtual PCD 00 00"); slot n listens on 35963 + n

CTRL_OFF = 0x00
CTRL_ON = 0x01
CTRL_RESET = 0x02
CTRL_ATR = 0x04

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_RETRY_MIN = 0.05
_RETRY_MAX = 1.0


class VirtualCard(Protocol):
    """What VpcdLink needs from a simulated card."""

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def execute(self, apdu: bytes) -> bytes: ...


class VpcdLink:
    """One virtual reader slot. A background thread serves vpcd for whatever card is inserted.

    Use as a context manager or call close(); the thread is always joined.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = VPCD_PORT, *, connect_timeout: float = 2.0
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError("VpcdLink only connects to the local vpcd (127.0.0.1)")
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._card: VirtualCard | None = None
        self._sock: socket.socket | None = None
        self._closed = False
        self._connected = threading.Event()
        self._cond = threading.Condition()
        self.apdu_count = 0
        self._thread = threading.Thread(target=self._run, name=f"vpcd-link-{port}", daemon=True)
        self._thread.start()

    def __enter__(self) -> VpcdLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- control -------------------------------------------------------------------------------
    @property
    def card(self) -> VirtualCard | None:
        return self._card

    @property
    def connected(self) -> bool:
        """True while vpcd has accepted this link's connection (the card is in the reader)."""
        return self._connected.is_set()

    def insert(self, card: VirtualCard) -> None:
        """Put `card` in the reader (replacing any card already there, which is removed first)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("VpcdLink is closed")
            if self._card is not None:
                self._drop_connection()
            self._card = card
            self._cond.notify_all()

    def remove(self) -> None:
        """Take the card out: the connection to vpcd closes and pcscd sees the card go."""
        with self._cond:
            self._card = None
            self._drop_connection()
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._card = None
            self._drop_connection()
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until vpcd holds the connection for the inserted card."""
        return self._connected.wait(timeout)

    def _drop_connection(self) -> None:
        # Called with the condition held; shutting the socket down wakes the thread's recv().
        self._connected.clear()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        delay = _RETRY_MIN
        while True:
            with self._cond:
                while not self._closed and self._card is None:
                    self._cond.wait()
                if self._closed:
                    return
                card = self._card
            assert card is not None
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            except OSError as error:
                log.debug("vpcd on %s:%d not reachable (%s); retrying", self.host, self.port, error)
                with self._cond:
                    if not self._closed and self._card is card:
                        self._cond.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                if self._closed or self._card is not card:  # removed while connecting
                    sock.close()
                    continue
                self._sock = sock
            try:
                served = self._serve(sock, card)
            finally:
                with self._cond:
                    self._sock = None
                self._connected.clear()
                sock.close()
                card.power_off()  # out of the field (or the reader went away): volatile state is lost
            delay = _RETRY_MIN if served else min(delay * 2, _RETRY_MAX)

    def _serve(self, sock: socket.socket, card: VirtualCard) -> bool:
        """Answer vpcd until the connection ends; True if at least one message was exchanged."""
        served = False
        while True:
            try:
                header = _recv_exact(sock, 2)
                if header is None:
                    return served
                length = int.from_bytes(header, "big")
                payload = _recv_exact(sock, length) if length else b""
                if payload is None:
                    return served
            except OSError:
                return served
            if not served:
                served = True
                self._connected.set()
            reply = self._handle(card, payload)
            if reply is None:
                continue
            try:
                sock.sendall(len(reply).to_bytes(2, "big") + reply)
            except OSError:
                return served

    def _handle(self, card: VirtualCard, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            control = payload[0]
            if control == CTRL_ATR:
                return card.atr
            if control == CTRL_ON:
                card.power_on()
            elif control == CTRL_OFF:
                card.power_off()
            elif control == CTRL_RESET:
                card.reset()
            else:
                log.warning("unknown vpcd control byte %02X", control)
            return None
        self.apdu_count += 1
        try:
            return card.execute(payload)
        except Exception:  # a simulator bug must not kill the reader
            log.exception("simulated card failed on an APDU")
            return b"\x6f\x00"


def _quick_ack(sock: socket.socket) -> None:
    """ACK at once: without it every APDU from vpcd waited ~40 ms (Nagle on vpcd's side meeting
    delayed ACKs on ours; measured with pcscd 1.9.9 + vsmartcard-vpcd 3.3 on Debian 12)."""
    if _TCP_QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Exactly `size` bytes, or None if the peer closed first (recv may return partial frames)."""
    buffer = bytearray()
    while len(buffer) < size:
        _quick_ack(sock)
        chunk = sock.recv(size - len(buffer))
        if not chunk:
            return None
        buffer += chunk
    return bytes(buffer)


# -- pcscd -------------------------------------------------------------------------------------------

VPCD_READER_CONF = Path("/etc/reader.conf.d/vpcd")


class PcscdUnavailable(RuntimeError):
    """pcscd or the vpcd driver is missing, or pcscd could not be started."""


def vpcd_reader_name(slot: int = 0) -> str:
    """The PC/SC name of a vpcd slot with Debian's default configuration."""
    return f"Virtual PCD 00 {slot:02d}"


def _vpcd_readers() -> list[str]:
    try:
        return [name for name in list_readers() if name.startswith("Virtual PCD")]
    except CardError:
        return []


@contextlib.contextmanager
def running_pcscd(timeout: float = 10.0) -> Iterator[bool]:
    """Make sure a pcscd with the vpcd readers is running; yields True if this call started it.

    A pcscd already serving the vpcd readers is reused and left alone. Otherwise `pcscd
    --foreground` (pcsc-lite 1.9.9 on Debian 12 is built without polkit, so no flag is needed;
    it uses /run/pcscd/pcscd.comm and reads /etc/reader.conf.d) runs as a child and is stopped
    on exit. Raises PcscdUnavailable if that cannot work.
    """
    if _vpcd_readers():
        yield False
        return
    if pcscd_running():
        raise PcscdUnavailable("a pcscd is running without the vpcd readers (is vsmartcard-vpcd installed?)")
    exe = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
    if exe is None:
        raise PcscdUnavailable("pcscd is not installed (Debian: apt install pcscd vsmartcard-vpcd)")
    if not VPCD_READER_CONF.exists():
        raise PcscdUnavailable(f"{VPCD_READER_CONF} missing (Debian: apt install vsmartcard-vpcd)")
    process = subprocess.Popen(
        [exe, "--foreground"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while not _vpcd_readers():
            if process.poll() is not None:
                raise PcscdUnavailable(
                    f"pcscd exited with status {process.returncode} (needs root for /run/pcscd)"
                )
            if time.monotonic() > deadline:
                raise PcscdUnavailable(f"pcscd started but no vpcd reader appeared within {timeout:.0f} s")
            time.sleep(0.05)
        yield True
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
