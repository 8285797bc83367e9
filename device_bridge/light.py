"""Signal light (呼出ランプ / tower light) on a counter: a serial relay or a simulated one.

The server sends ``{"command": "light", "state": "on"|"off"}`` to the bridge; the bridge calls
:meth:`SignalLight.set`. Two kinds:

- ``SerialLight``: a USB-serial tower light or relay board. Switching is a fixed byte string per
  state, written to the port (e.g. the common LCUS-1 relay: on ``A0 01 01 A2``, off ``A0 01 00 A1``).
  The port is opened on first use and reopened after an error (a light unplugged and plugged back).
- ``SimulatedLight``: remembers its state and history, and can mirror the state into a file (for
  tests and the demo, where the bridge runs as another process).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

__all__ = ["LightUnavailable", "SerialLight", "SignalLight", "SimulatedLight", "parse_bytes"]

log = logging.getLogger(__name__)


class LightUnavailable(Exception):
    """The light can't be switched now; ``reason`` is Japanese, for staff."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignalLight(Protocol):
    @property
    def state(self) -> bool | None:
        """True on, False off, None not known yet."""
        ...

    def set(self, on: bool) -> None: ...

    def close(self) -> None: ...


def parse_bytes(text: str) -> bytes:
    """Bytes written as hex (``"A0 01 01 A2"``, ``"a00101a2"``, ``"0xA0,0x01"``)."""
    cleaned = text.replace(",", " ").replace("0x", " ").replace("0X", " ")
    digits = "".join(cleaned.split())
    if not digits or len(digits) % 2:
        raise ValueError(f"not a hex byte string: {text!r}")
    return bytes.fromhex(digits)


class SimulatedLight:
    """A light that only remembers. ``state_file`` (optional) gets "on"/"off" on every change."""

    def __init__(self, state_file: str | Path | None = None) -> None:
        self._state: bool | None = None
        self.history: list[tuple[float, bool]] = []
        self.state_file = Path(state_file) if state_file else None
        self._lock = threading.Lock()

    @property
    def state(self) -> bool | None:
        return self._state

    def set(self, on: bool) -> None:
        with self._lock:
            self._state = on
            self.history.append((time.time(), on))
            if self.state_file is not None:
                tmp = self.state_file.with_name(self.state_file.name + ".tmp")
                tmp.write_text("on" if on else "off", encoding="utf-8")
                os.replace(tmp, self.state_file)
        log.info("signal light (simulated): %s", "on" if on else "off")

    def close(self) -> None:
        pass


class SerialLight:
    """A tower light / relay on a serial port (pyserial)."""

    def __init__(
        self,
        device: str,
        on_bytes: bytes,
        off_bytes: bytes,
        *,
        baudrate: int = 9600,
        timeout: float = 2.0,
    ) -> None:
        self.device = device
        self.on_bytes = on_bytes
        self.off_bytes = off_bytes
        self.baudrate = baudrate
        self.timeout = timeout
        self._port: Any = None
        self._state: bool | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> bool | None:
        return self._state

    def _open(self) -> Any:
        if self._port is not None:
            return self._port
        try:
            serial = importlib.import_module("serial")
        except ImportError as exc:
            raise LightUnavailable("シリアル通信のライブラリ（pyserial）がありません") from exc
        try:
            self._port = serial.Serial(
                self.device, baudrate=self.baudrate, timeout=self.timeout, write_timeout=self.timeout
            )
        except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
            raise LightUnavailable(f"表示灯（{self.device}）に接続できません") from exc
        return self._port

    def set(self, on: bool) -> None:
        data = self.on_bytes if on else self.off_bytes
        with self._lock:
            for tries_left in (1, 0):
                port = self._open()
                try:
                    port.write(data)
                    port.flush()
                except (OSError, ValueError) as exc:
                    self._close_port()
                    if not tries_left:
                        raise LightUnavailable(f"表示灯（{self.device}）に書き込めません") from exc
                    continue
                self._state = on
                return

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(OSError, ValueError):
                port.close()

    def close(self) -> None:
        with self._lock:
            self._close_port()
