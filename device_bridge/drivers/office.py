"""Office printer driver: PDFs to a CUPS queue.

Everything goes to the scheduler as IPP requests (RFC 8010/8011) — on its unix socket
``/run/cups/cups.sock`` when there, else ``localhost:631``, or the ``server`` in the configuration:
jobs go in with Print-Job (the document in the same request), are cancelled with Cancel-Job and
followed with Get-Job-Attributes / Get-Printer-Attributes, so states are exact IPP enums, not parsed
from localised ``lpstat`` text, and no CUPS command (cups-client) runs: one job costs one
Get-Printer-Attributes and one Print-Job, no process.

Requests name the user (``requesting-user-name``: the process's user). When a queue's policy
wants an authenticated user (``printer-op-policy=authenticated``), requests on the unix socket
authenticate as ``lp`` does, with the socket's peer credentials (``PeerCred``). Unlike ``lp``, the
driver reads no ``lpoptions`` files and doesn't copy the queue's defaults into each job: set
defaults on the queue (``lpadmin -p <queue> -o number-up-default=2``, or its PPD's options), which
the scheduler and the filters apply to every job that doesn't say otherwise.

    printer = OfficePrinter.from_config({"queue": "madoguchi-sim"})
    job_id = printer.print_pdf(pdf_bytes, copies=2, duplex="long", tray="tray-2", title="住民票の写し")
    status = printer.wait(job_id, timeout=120)      # JobStatus(state=JobState.COMPLETED, …)

Configuration (a dict, e.g. from the bridge's settings)::

    {"queue": "madoguchi-sim",          # CUPS queue name (required)
     "server": None,                    # CUPS server: "host", "host:port" or a socket path
     "tray_keyword": "media-source",    # option that selects the tray; "InputSlot" for PPD queues
     "timeout": 30}                     # seconds for one IPP request

The blocking calls are meant for a worker thread (``asyncio.to_thread``) in the bridge.
"""

from __future__ import annotations

import enum
import getpass
import http.client
import os
import re
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "JobNotFound",
    "JobState",
    "JobStatus",
    "JobSummary",
    "OfficePrinter",
    "OfficePrinterConfig",
    "PrinterUnavailable",
    "QueueStatus",
]

CUPS_SOCKET = Path("/run/cups/cups.sock")

Duplex = (
    Literal[
        "long",
        "short",
        "off",
        "long-edge",
        "short-edge",
        "one-sided",
        "two-sided-long-edge",
        "two-sided-short-edge",
    ]
    | bool
    | None
)
_SIDES = {
    "long": "two-sided-long-edge",
    "long-edge": "two-sided-long-edge",
    "two-sided-long-edge": "two-sided-long-edge",
    "short": "two-sided-short-edge",
    "short-edge": "two-sided-short-edge",
    "two-sided-short-edge": "two-sided-short-edge",
    "off": "one-sided",
    "one-sided": "one-sided",
}


class PrinterUnavailable(Exception):
    """The printer can't print now; ``reason`` is a Japanese message for staff.

    Shared by the office and receipt drivers (``device_bridge.drivers.receipt`` re-exports it).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobNotFound(LookupError):
    """CUPS has no job with this id (never existed, or purged from its history)."""


class JobState(enum.StrEnum):
    PENDING = "pending"
    HELD = "held"
    PROCESSING = "processing"
    STOPPED = "stopped"
    CANCELLED = "cancelled"
    ABORTED = "aborted"
    COMPLETED = "completed"

    @property
    def is_final(self) -> bool:
        return self in (JobState.CANCELLED, JobState.ABORTED, JobState.COMPLETED)


# IPP job-state enum (RFC 8011 §5.3.7).
_JOB_STATES = {
    3: JobState.PENDING,
    4: JobState.HELD,
    5: JobState.PROCESSING,
    6: JobState.STOPPED,
    7: JobState.CANCELLED,
    8: JobState.ABORTED,
    9: JobState.COMPLETED,
}


@dataclass(frozen=True)
class JobSummary:
    job_id: int
    name: str
    state: JobState


@dataclass(frozen=True)
class JobStatus:
    job_id: int
    state: JobState
    reasons: tuple[str, ...] = ()
    message: str = ""

    @property
    def is_final(self) -> bool:
        return self.state.is_final


# printer-state-reasons (RFC 8011 / PWG 5100.9) → words for staff. Suffixes -report/-warning/-error
# are stripped before the lookup.
_REASON_TEXT = {
    "media-empty": "用紙切れ",
    "media-needed": "用紙切れ",
    "media-jam": "紙詰まり",
    "cover-open": "カバーが開いています",
    "door-open": "カバーが開いています",
    "toner-empty": "トナー切れ",
    "marker-supply-empty": "トナー・インク切れ",
    "offline": "オフライン",
    "shutdown": "電源が切れています",
    "connecting-to-device": "プリンターに接続できません",
    "timed-out": "プリンターが応答しません",
    "input-tray-missing": "給紙トレイがありません",
    "output-area-full": "排紙トレイがいっぱいです",
}


@dataclass(frozen=True)
class QueueStatus:
    queue: str
    exists: bool
    state: Literal["idle", "processing", "stopped", "missing"]
    accepting: bool
    reasons: tuple[str, ...] = ()
    message: str = ""

    @property
    def can_print(self) -> bool:
        return self.exists and self.state != "stopped" and self.accepting

    def staff_reason(self) -> str:
        """Japanese sentence saying why the queue can't print ('' when it can)."""
        if not self.exists:
            return f"プリンター「{self.queue}」が見つかりません（設定を確認してください）"
        details: list[str] = []
        for reason in self.reasons:
            base = re.sub(r"-(report|warning|error)$", "", reason)
            text = _REASON_TEXT.get(base)
            if text and text not in details:
                details.append(text)
        detail = f"：{'、'.join(details)}" if details else ""
        if self.state == "stopped":
            return f"プリンター「{self.queue}」が停止しています{detail}"
        if not self.accepting:
            return f"プリンター「{self.queue}」が印刷の受付を停止しています{detail}"
        return ""


@dataclass(frozen=True)
class OfficePrinterConfig:
    queue: str
    server: str | None = None
    tray_keyword: str = "media-source"
    timeout: float = 30.0

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> OfficePrinterConfig:
        queue = data.get("queue")
        if not isinstance(queue, str) or not queue.strip():
            raise ValueError("office printer config needs 'queue' (the CUPS queue name)")
        server = data.get("server")
        if server is not None and not isinstance(server, str):
            raise ValueError("office printer 'server' must be a string")
        tray_keyword = data.get("tray_keyword", "media-source")
        if not isinstance(tray_keyword, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", tray_keyword):
            raise ValueError("office printer 'tray_keyword' must be an option name")
        timeout = data.get("timeout", 30.0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError("office printer 'timeout' must be a positive number of seconds")
        unknown = set(data) - {"kind", "queue", "server", "tray_keyword", "timeout"}
        if unknown:
            raise ValueError(f"unknown office printer settings: {', '.join(sorted(unknown))}")
        return cls(
            queue=queue.strip(), server=server or None, tray_keyword=tray_keyword, timeout=float(timeout)
        )


# --- a minimal IPP client (RFC 8010 encoding) --------------------------------------------------

_TAG_OPERATION = 0x01
_TAG_JOB = 0x02
_TAG_END = 0x03
_TAG_INTEGER = 0x21
_TAG_BOOLEAN = 0x22
_TAG_ENUM = 0x23
_TAG_URI = 0x45
_TAG_CHARSET = 0x47
_TAG_LANGUAGE = 0x48
_TAG_TEXT = 0x41
_TAG_NAME = 0x42
_TAG_KEYWORD = 0x44
_TAG_MIME = 0x49
_TEXT_TAGS = {0x41, 0x42, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49}

_OP_PRINT_JOB = 0x0002
_OP_CANCEL_JOB = 0x0008
_OP_GET_JOB_ATTRIBUTES = 0x0009
_OP_GET_JOBS = 0x000A
_OP_GET_PRINTER_ATTRIBUTES = 0x000B
_STATUS_NOT_FOUND = 0x0406
_STATUS_NOT_POSSIBLE = 0x0404
_STATUS_NOT_ACCEPTING = 0x0506

# Longest value of each IPP syntax (RFC 8011 §5.1): name and keyword 255 octets, text 1023.
_MAX_NAME = 255
_MAX_TEXT = 1023
_OPTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_INTEGER = re.compile(r"-?[0-9]{1,10}")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

IppValue = int | bool | str | bytes


class IppError(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(f"IPP status 0x{status:04x} {message}".strip())
        self.status = status
        self.message = message  # the response's status-message ('' when it had none)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _attr(tag: int, name: str, value: bytes) -> bytes:
    encoded = name.encode("ascii")
    return struct.pack(">BH", tag, len(encoded)) + encoded + struct.pack(">H", len(value)) + value


def _encode_request(
    operation: int,
    request_id: int,
    attributes: list[tuple[int, str, bytes]],
    job_attributes: list[tuple[int, str, bytes]] | None = None,
) -> bytes:
    """The request up to and with end-of-attributes-tag (a document, if any, follows it)."""
    out = [struct.pack(">BBHI", 2, 0, operation, request_id), bytes([_TAG_OPERATION])]
    for tag, name, value in attributes:
        out.append(_attr(tag, name, value))
    if job_attributes:
        out.append(bytes([_TAG_JOB]))
        for tag, name, value in job_attributes:
            out.append(_attr(tag, name, value))
    out.append(bytes([_TAG_END]))
    return b"".join(out)


def _option_attribute(name: str, value: str, *, numbers: bool = True) -> tuple[int, str, bytes]:
    """A print option as one IPP job attribute.

    As ``lp -o`` guesses for options it doesn't know, but without its splitting at spaces and
    commas: unless ``numbers`` is false, decimal digits (optionally ``-``, within 32 bits) go as an
    integer (``job-priority=50``, ``number-up=2``) and ``true``/``false`` as a boolean
    (``fit-to-page=true``); a token of letters, digits and ``._-`` as a keyword
    (``job-hold-until=indefinite``, ``media=iso_a4_210x297mm``); anything else as a name (text when
    longer than 255 bytes). Always one value.
    """
    if numbers:
        if _INTEGER.fullmatch(value) and -(2**31) <= int(value) < 2**31:
            return _TAG_INTEGER, name, struct.pack(">i", int(value))
        if value.lower() in ("true", "false"):
            return _TAG_BOOLEAN, name, b"\x01" if value.lower() == "true" else b"\x00"
    encoded = value.encode("utf-8")
    if len(encoded) > _MAX_TEXT:
        raise ValueError(f"CUPS option {name} is longer than {_MAX_TEXT} bytes")
    if len(encoded) <= _MAX_NAME and _TOKEN.fullmatch(value):
        return _TAG_KEYWORD, name, encoded
    return (_TAG_NAME if len(encoded) <= _MAX_NAME else _TAG_TEXT), name, encoded


def _decode_groups(data: bytes) -> tuple[int, list[tuple[int, dict[str, list[IppValue]]]]]:
    """Status code and the attribute groups as (group tag, attributes), in order."""
    if len(data) < 9:
        raise IppError(0xFFFF, "short IPP response")
    _major, _minor, status, _request_id = struct.unpack(">BBHI", data[:8])
    groups: list[tuple[int, dict[str, list[IppValue]]]] = []
    attributes: dict[str, list[IppValue]] | None = None
    pos = 8
    current: str | None = None
    while pos < len(data):
        tag = data[pos]
        pos += 1
        if tag == _TAG_END:
            break
        if tag < 0x10:  # a group starts
            attributes = {}
            groups.append((tag, attributes))
            current = None
            continue
        if pos + 2 > len(data):
            break
        (name_len,) = struct.unpack(">H", data[pos : pos + 2])
        pos += 2
        name = data[pos : pos + name_len].decode("utf-8", "replace")
        pos += name_len
        if pos + 2 > len(data):
            break
        (value_len,) = struct.unpack(">H", data[pos : pos + 2])
        pos += 2
        raw = data[pos : pos + value_len]
        pos += value_len
        value: IppValue
        if tag in (_TAG_INTEGER, _TAG_ENUM) and value_len == 4:
            value = struct.unpack(">i", raw)[0]
        elif tag == _TAG_BOOLEAN and value_len == 1:
            value = raw != b"\x00"
        elif tag in _TEXT_TAGS:
            value = raw.decode("utf-8", "replace")
        else:
            value = raw
        if attributes is None:  # an attribute before any group: malformed, keep going
            attributes = {}
            groups.append((0, attributes))
        if name_len:
            attributes.setdefault(name, []).append(value)
            current = name
        elif current is not None:
            attributes[current].append(value)
    return status, groups


def _decode_response(data: bytes) -> tuple[int, dict[str, list[IppValue]]]:
    """Status code and the attributes of all groups (later groups don't override earlier ones)."""
    status, groups = _decode_groups(data)
    return status, _merge(groups)


def _merge(groups: list[tuple[int, dict[str, list[IppValue]]]]) -> dict[str, list[IppValue]]:
    merged: dict[str, list[IppValue]] = {}
    for _tag, attributes in groups:
        for name, values in attributes.items():
            merged.setdefault(name, values)
    return merged


# --- the driver --------------------------------------------------------------------------------


@dataclass
class OfficePrinter:
    config: OfficePrinterConfig
    _request_id: int = field(default=0, repr=False)

    @classmethod
    def from_config(cls, data: Mapping[str, object]) -> OfficePrinter:
        return cls(OfficePrinterConfig.from_dict(data))

    @property
    def queue(self) -> str:
        return self.config.queue

    # -- IPP --

    def _connection(self) -> http.client.HTTPConnection:
        server = self.config.server or os.environ.get("CUPS_SERVER") or ""
        timeout = self.config.timeout
        if server.startswith("/"):
            return _UnixHTTPConnection(server, timeout)
        if not server:
            if CUPS_SOCKET.exists():
                return _UnixHTTPConnection(str(CUPS_SOCKET), timeout)
            server = "localhost"
        host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
        return http.client.HTTPConnection(host, int(port) if port else 631, timeout=timeout)

    def _ipp(
        self, operation: int, path: str, attributes: list[tuple[int, str, bytes]]
    ) -> dict[str, list[IppValue]]:
        return _merge(self._ipp_groups(operation, path, attributes))

    def _ipp_groups(
        self,
        operation: int,
        path: str,
        attributes: list[tuple[int, str, bytes]],
        *,
        job_attributes: list[tuple[int, str, bytes]] | None = None,
        document: bytes = b"",
        timeout_reason: str = "印刷サービス（CUPS）に接続できません",
    ) -> list[tuple[int, dict[str, list[IppValue]]]]:
        """One IPP request (``document`` after its attributes); the response's groups.

        Raises :class:`IppError` for an IPP error status, :class:`PrinterUnavailable` when the
        scheduler can't be reached or answers with an HTTP error (``timeout_reason`` when it
        doesn't answer in time).
        """
        self._request_id = self._request_id % 0x7FFFFFFF + 1
        body = _encode_request(
            operation,
            self._request_id,
            [
                (_TAG_CHARSET, "attributes-charset", b"utf-8"),
                (_TAG_LANGUAGE, "attributes-natural-language", b"en"),
                *attributes,
            ],
            job_attributes,
        )
        if document:
            body += document  # one send: no Nagle/delayed-ACK stall between header and document
        headers: dict[str, str | bytes] = {"Content-Type": "application/ipp"}
        while True:
            conn = self._connection()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError as exc:
                raise PrinterUnavailable(timeout_reason) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise PrinterUnavailable("印刷サービス（CUPS）に接続できません") from exc
            finally:
                conn.close()
            if (
                response.status == 401
                and "Authorization" not in headers
                and isinstance(conn, _UnixHTTPConnection)
                and "peercred" in (response.getheader("WWW-Authenticate") or "").lower()
            ):
                # The queue's policy wants an authenticated user (printer-op-policy=authenticated):
                # on the local socket cupsd checks the name against the socket's peer credentials,
                # as it does for lp (libcups). Only then: the default policy needs no round trip.
                headers["Authorization"] = b"PeerCred " + self._user()
                continue
            if response.status != 200:
                raise PrinterUnavailable(
                    f"印刷サービス（CUPS）がエラーを返しました（HTTP {response.status}）"
                )
            break
        status, groups = _decode_groups(data)
        if status > 0x00FF:
            messages = _merge(groups).get("status-message", [])
            raise IppError(status, str(messages[0]) if messages else "")
        return groups

    def _user(self) -> bytes:
        try:
            return getpass.getuser().encode("utf-8")
        except (OSError, KeyError):
            return b"madoguchi"

    # -- queue --

    def queue_status(self) -> QueueStatus:
        """The queue's state from CUPS; a missing queue gives ``exists=False``, not an error."""
        uri = f"ipp://localhost/printers/{self.queue}".encode()
        try:
            attrs = self._ipp(
                _OP_GET_PRINTER_ATTRIBUTES,
                f"/printers/{self.queue}",
                [
                    (_TAG_URI, "printer-uri", uri),
                    (_TAG_NAME, "requesting-user-name", self._user()),
                    (_TAG_KEYWORD, "requested-attributes", b"printer-state"),
                    (_TAG_KEYWORD, "", b"printer-state-reasons"),
                    (_TAG_KEYWORD, "", b"printer-state-message"),
                    (_TAG_KEYWORD, "", b"printer-is-accepting-jobs"),
                ],
            )
        except IppError as exc:
            if exc.status == _STATUS_NOT_FOUND:
                return QueueStatus(self.queue, exists=False, state="missing", accepting=False)
            raise PrinterUnavailable(f"印刷サービス（CUPS）がエラーを返しました（{exc}）") from exc
        state_value = _first(attrs, "printer-state")
        state: Literal["idle", "processing", "stopped", "missing"] = "stopped"
        if state_value == 3:
            state = "idle"
        elif state_value == 4:
            state = "processing"
        accepting = _first(attrs, "printer-is-accepting-jobs")
        reasons = tuple(str(r) for r in attrs.get("printer-state-reasons", []) if str(r) != "none")
        message = _first(attrs, "printer-state-message")
        return QueueStatus(
            self.queue,
            exists=True,
            state=state,
            accepting=bool(accepting) if isinstance(accepting, bool) else True,
            reasons=reasons,
            message=message if isinstance(message, str) else "",
        )

    def check_available(self) -> QueueStatus:
        """Raise :class:`PrinterUnavailable` (Japanese reason) unless the queue takes and prints jobs."""
        status = self.queue_status()
        if not status.can_print:
            raise PrinterUnavailable(status.staff_reason())
        return status

    # -- jobs --

    def print_pdf(
        self,
        document: bytes | os.PathLike[str] | str,
        *,
        copies: int = 1,
        duplex: Duplex = None,
        tray: str | None = None,
        title: str | None = None,
        options: Mapping[str, str] | None = None,
        checked: bool = False,
    ) -> int:
        """Send a PDF (bytes or a path) to the queue; returns the CUPS job id.

        One IPP Print-Job to ``/printers/<queue>`` carrying the document, after
        :meth:`check_available` (a stopped queue still takes jobs: this refuses them, nothing is
        queued; ``checked=True``: the caller has just checked). ``duplex``: ``"long"``/``True`` → sides=two-sided-long-edge, ``"short"`` → short
        edge, ``"off"``/``False`` → one-sided, ``None`` → the queue's default (IPP ``sides``
        keywords work too). ``tray`` goes out as ``<tray_keyword>=<tray>`` (``media-source=tray-2``
        by default), a keyword (a name when it isn't a token). ``options`` are extra job attributes, ``name=value`` as ``lp -o`` takes them
        (e.g. ``{"job-hold-until": "indefinite"}``), each one value typed as
        :func:`_option_attribute` says; they win over ``copies``/``duplex``/``tray`` of the same
        name. The job is named ``title``; without one as ``lp`` names it: the file's name, or
        ``(stdin)`` for bytes. The document goes as ``application/pdf`` when it starts with
        ``%PDF-``, else as ``application/octet-stream`` (CUPS then finds its type).
        """
        if not isinstance(copies, int) or isinstance(copies, bool) or not 1 <= copies <= 999:
            raise ValueError("copies must be an integer from 1 to 999")
        job: dict[str, tuple[int, str, bytes]] = {
            "copies": (_TAG_INTEGER, "copies", struct.pack(">i", copies))
        }
        if duplex is not None:
            sides = _SIDES.get("long" if duplex is True else "off" if duplex is False else str(duplex))
            if sides is None:
                raise ValueError(f"duplex must be one of {', '.join(sorted(_SIDES))}, True, False or None")
            job["sides"] = (_TAG_KEYWORD, "sides", sides.encode())
        if tray:
            job[self.config.tray_keyword] = _option_attribute(self.config.tray_keyword, tray, numbers=False)
        for name, value in (options or {}).items():
            if not _OPTION_NAME.fullmatch(name):
                raise ValueError(f"invalid CUPS option name {name!r}")
            job[name] = _option_attribute(name, str(value))
        operation = [
            (_TAG_URI, "printer-uri", f"ipp://localhost/printers/{self.queue}".encode()),
            (_TAG_NAME, "requesting-user-name", self._user()),
        ]
        if isinstance(document, bytes | bytearray):
            data = bytes(document)
            operation.append((_TAG_NAME, "job-name", (title or "(stdin)").encode("utf-8")))
        else:
            path = Path(document)
            if not path.is_file():
                raise FileNotFoundError(path)
            data = path.read_bytes()
            operation.append((_TAG_NAME, "job-name", (title or path.name).encode("utf-8")))
            operation.append((_TAG_NAME, "document-name", path.name.encode("utf-8")))
        fmt = b"application/pdf" if data.startswith(b"%PDF-") else b"application/octet-stream"
        operation.append((_TAG_MIME, "document-format", fmt))
        if not checked:
            self.check_available()
        try:
            groups = self._ipp_groups(
                _OP_PRINT_JOB,
                f"/printers/{self.queue}",
                operation,
                job_attributes=[job[name] for name in sorted(job)],
                document=data,
                timeout_reason="印刷サービス（CUPS）が応答しません",
            )
        except IppError as exc:
            if exc.status == _STATUS_NOT_FOUND:
                raise PrinterUnavailable(
                    f"プリンター「{self.queue}」が見つかりません（設定を確認してください）"
                ) from exc
            if exc.status == _STATUS_NOT_ACCEPTING:
                raise PrinterUnavailable(f"プリンター「{self.queue}」が印刷の受付を停止しています") from exc
            raise PrinterUnavailable(f"印刷できませんでした（{exc.message or exc}）") from exc
        for tag, attrs in groups:
            job_id = _first(attrs, "job-id")
            if tag == _TAG_JOB and isinstance(job_id, int) and not isinstance(job_id, bool):
                return job_id
        raise PrinterUnavailable("印刷できませんでした（CUPS が印刷ジョブの番号を返しませんでした）")

    def job_state(self, job_id: int) -> JobStatus:
        """The job's state from CUPS; raises :class:`JobNotFound` for an unknown (or purged) job."""
        try:
            attrs = self._ipp(
                _OP_GET_JOB_ATTRIBUTES,
                "/jobs/",
                [
                    (_TAG_URI, "printer-uri", f"ipp://localhost/printers/{self.queue}".encode()),
                    (_TAG_INTEGER, "job-id", struct.pack(">i", job_id)),
                    (_TAG_NAME, "requesting-user-name", self._user()),
                    (_TAG_KEYWORD, "requested-attributes", b"job-state"),
                    (_TAG_KEYWORD, "", b"job-state-reasons"),
                    (_TAG_KEYWORD, "", b"job-printer-state-message"),
                ],
            )
        except IppError as exc:
            if exc.status == _STATUS_NOT_FOUND:
                raise JobNotFound(f"no CUPS job {job_id}") from exc
            raise PrinterUnavailable(f"印刷サービス（CUPS）がエラーを返しました（{exc}）") from exc
        value = _first(attrs, "job-state")
        if not isinstance(value, int) or value not in _JOB_STATES:
            raise PrinterUnavailable(f"印刷ジョブ {job_id} の状態が読めません")
        message = _first(attrs, "job-printer-state-message")
        return JobStatus(
            job_id=job_id,
            state=_JOB_STATES[value],
            reasons=tuple(str(r) for r in attrs.get("job-state-reasons", []) if str(r) != "none"),
            message=message if isinstance(message, str) else "",
        )

    def wait(self, job_id: int, timeout: float = 120.0, poll: float = 0.1) -> JobStatus:
        """Follow the job until it is completed, aborted or cancelled; returns that final status.

        Raises ``TimeoutError`` when it's still pending/held/processing after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.job_state(job_id)
            if status.is_final:
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"CUPS job {job_id} still {status.state} after {timeout} s")
            time.sleep(min(poll, remaining))

    def jobs(self, which: Literal["all", "completed", "not-completed"] = "all") -> list[JobSummary]:
        """The queue's jobs (IPP Get-Jobs), oldest first; finished ones as far as CUPS keeps them."""
        request = [
            (_TAG_URI, "printer-uri", f"ipp://localhost/printers/{self.queue}".encode()),
            (_TAG_NAME, "requesting-user-name", self._user()),
            (_TAG_KEYWORD, "which-jobs", which.encode()),
            (_TAG_KEYWORD, "requested-attributes", b"job-id"),
            (_TAG_KEYWORD, "", b"job-name"),
            (_TAG_KEYWORD, "", b"job-state"),
        ]
        try:
            groups = self._ipp_groups(_OP_GET_JOBS, f"/printers/{self.queue}", request)
        except IppError as exc:
            if exc.status == _STATUS_NOT_FOUND:
                return []
            raise PrinterUnavailable(f"印刷サービス（CUPS）がエラーを返しました（{exc}）") from exc
        out: list[JobSummary] = []
        for tag, attrs in groups:
            if tag != _TAG_JOB:
                continue
            job_id, name, state = (
                _first(attrs, "job-id"),
                _first(attrs, "job-name"),
                _first(attrs, "job-state"),
            )
            if isinstance(job_id, int) and isinstance(state, int) and state in _JOB_STATES:
                out.append(JobSummary(job_id, name if isinstance(name, str) else "", _JOB_STATES[state]))
        return sorted(out, key=lambda job: job.job_id)

    def find_job(self, title: str) -> int | None:
        """The newest job on the queue named ``title`` (``print_pdf``'s title), in any state, or None.

        For a caller that doesn't know whether ``print_pdf`` reached CUPS (the Print-Job failed or
        timed out): with a unique title per job the answer is certain.
        """
        found = [job.job_id for job in self.jobs("all") if job.name == title]
        return max(found) if found else None

    def cancel(self, job_id: int) -> bool:
        """Cancel a job (IPP Cancel-Job). True when cancelled now; False when it had already finished."""
        try:
            self._ipp_groups(
                _OP_CANCEL_JOB,
                "/jobs/",
                [
                    (_TAG_URI, "printer-uri", f"ipp://localhost/printers/{self.queue}".encode()),
                    (_TAG_INTEGER, "job-id", struct.pack(">i", job_id)),
                    (_TAG_NAME, "requesting-user-name", self._user()),
                ],
            )
        except IppError as exc:
            if exc.status == _STATUS_NOT_FOUND:
                raise JobNotFound(f"no CUPS job {job_id}") from exc
            if exc.status == _STATUS_NOT_POSSIBLE and "already" in exc.message:
                return False  # "Job #n is already completed/canceled/aborted - can't cancel."
            raise PrinterUnavailable(f"印刷ジョブを取り消せませんでした（{exc.message or exc}）") from exc
        return True


def _first(attrs: Mapping[str, list[IppValue]], name: str) -> IppValue | None:
    values = attrs.get(name)
    return values[0] if values else None
