"""The device bridge's settings, from a TOML file (``madoguchi bridge --config bridge.toml``).

Example::

    server_url = "https://madoguchi.city.example.lg.jp"
    token_file = "/etc/madoguchi/bridge.token"   # or: token = "…" (the device token from 管理画面)
    data_dir = "/var/lib/madoguchi-bridge"       # the print journal lives here
    heartbeat_seconds = 15
    retry_seconds = 3                            # how often to retry a printer that can't print
    log_level = "info"

    [printers.receipt]                           # ESC/POS; every key goes to the receipt driver
    kind = "network"                             # network | usb | serial
    host = "192.0.2.10"
    port = 9100
    paper_mm = 80

    [printers.office]                            # CUPS
    queue = "madoguchi-office"
    duplex = "long"                              # long | short | off; leave out for the queue's default
    tray = "tray-2"

    [card_reader]
    enabled = true
    reader = "Sony"                              # only readers whose name contains this

    [signal_light]                               # or: signal_light = "simulated"
    kind = "serial"
    device = "/dev/ttyUSB0"
    baudrate = 9600
    on = "A0 01 01 A2"                           # bytes in hex
    off = "A0 01 00 A1"

    [scanner]                                    # a QR / 2D-code scanner in serial (COM port) mode
    kind = "serial"                              # keyboard-wedge (USB HID) scanners need no entry
    device = "/dev/serial/by-id/usb-…-if00"      # a by-id name survives unplugging
    baudrate = 9600
    terminator = "CR"                            # CR | LF | CRLF | TAB | none (silence ends a scan)
    encoding = "auto"                            # auto (UTF-8, else Shift_JIS) | utf-8 | shift_jis | …
    prefix = ""                                  # stripped when the scanner adds one
    suffix = ""

Relative paths are relative to the file's folder. Errors name the key, in Japanese and English.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "BridgeConfig",
    "CardReaderConfig",
    "ConfigError",
    "LightConfig",
    "OfficeConfig",
    "ReceiptConfig",
    "ScannerConfig",
    "load_config",
]

_TOP_KEYS = {
    "server_url",
    "token",
    "token_file",
    "data_dir",
    "printers",
    "card_reader",
    "signal_light",
    "scanner",
    "heartbeat_seconds",
    "retry_seconds",
    "request_timeout",
    "stream_timeout",
    "log_level",
}
_LOG_LEVELS = ("debug", "info", "warning", "error")
_TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t", "NONE": b""}


class ConfigError(ValueError):
    """A bad or missing setting; the message names the key (Japanese / English)."""

    def __init__(self, key: str, japanese: str, english: str) -> None:
        self.key = key
        super().__init__(f"設定エラー「{key}」: {japanese} / config error '{key}': {english}")


@dataclass(frozen=True)
class ReceiptConfig:
    """The receipt printer; ``options`` is the receipt driver's configuration dict as written."""

    options: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.options.get("kind", ""))

    @property
    def paper_mm(self) -> int:
        value = self.options.get("paper_mm", 80)
        return value if isinstance(value, int) else 80


@dataclass(frozen=True)
class OfficeConfig:
    """The office printer: a CUPS queue and its defaults; ``options`` go to the office driver."""

    queue: str
    duplex: Literal["long", "short", "off"] | None = None
    tray: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CardReaderConfig:
    enabled: bool = True
    reader: str = ""  # substring of the PC/SC reader name; "" = any reader
    poll_seconds: float = 0.5


@dataclass(frozen=True)
class LightConfig:
    kind: Literal["serial", "simulated"]
    device: str = ""
    baudrate: int = 9600
    on: bytes = b""
    off: bytes = b""
    state_file: Path | None = None  # simulated: mirror the state into this file


@dataclass(frozen=True)
class ScannerConfig:
    """A QR / 2D-code scanner on a serial port (see :mod:`device_bridge.drivers.scanner`)."""

    kind: Literal["serial"]
    device: str
    baudrate: int = 9600
    terminator: bytes = b"\r"  # b"": no terminator, a pause ends a scan
    encoding: str = "auto"  # "auto": UTF-8, else CP932 (Shift_JIS)
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class BridgeConfig:
    server_url: str
    token: str = field(repr=False)
    data_dir: Path
    receipt: ReceiptConfig | None = None
    office: OfficeConfig | None = None
    card_reader: CardReaderConfig | None = None
    signal_light: LightConfig | None = None
    scanner: ScannerConfig | None = None
    heartbeat_seconds: float = 15.0
    retry_seconds: float = 3.0
    request_timeout: float = 10.0
    stream_timeout: float = 45.0  # silence on the event stream after which it counts as dead
    log_level: str = "info"

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.sqlite3"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: Path | None = None) -> BridgeConfig:
        return _parse(data, base_dir or Path.cwd())


def load_config(path: str | Path) -> BridgeConfig:
    """Read and check a bridge TOML file; :class:`ConfigError` on anything wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            str(path), "設定ファイルを読めません", f"cannot read the config file ({exc})"
        ) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), "TOML として読めません", f"not valid TOML ({exc})") from exc
    return _parse(data, path.resolve().parent)


# --- parsing -----------------------------------------------------------------------------------


def _table(data: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(name, "表（[section]）で指定してください", "must be a table")
    return value


def _unknown(data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        key = f"{prefix}{extra[0]}"
        raise ConfigError(key, "不明な設定です", f"unknown setting (allowed: {', '.join(sorted(allowed))})")


def _str(data: Mapping[str, Any], key: str, name: str, *, required: bool = False, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise ConfigError(name, "必須の設定がありません", "required setting is missing")
        return default
    if not isinstance(value, str):
        raise ConfigError(name, "文字列で指定してください", "must be a string")
    return value


def _number(
    data: Mapping[str, Any], key: str, name: str, default: float, *, minimum: float, maximum: float
) -> float:
    value = data.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(name, "数値で指定してください", "must be a number")
    if not minimum <= value <= maximum:
        raise ConfigError(
            name,
            f"{minimum:g} から {maximum:g} の範囲で指定してください",
            f"must be from {minimum:g} to {maximum:g}",
        )
    return float(value)


def _bool(data: Mapping[str, Any], key: str, name: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(name, "true か false で指定してください", "must be true or false")
    return value


def _path(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _parse(data: Mapping[str, Any], base_dir: Path) -> BridgeConfig:
    _unknown(data, _TOP_KEYS, "")

    server_url = _str(data, "server_url", "server_url", required=True).strip().rstrip("/")
    parts = urlsplit(server_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            "server_url",
            "http:// か https:// で始まるサーバーの URL を指定してください",
            "must be an http(s) URL",
        )

    token = _str(data, "token", "token").strip()
    token_file = _str(data, "token_file", "token_file").strip()
    if token and token_file:
        raise ConfigError(
            "token",
            "token と token_file のどちらか一方だけを指定してください",
            "give token or token_file, not both",
        )
    if token_file:
        path = _path(token_file, base_dir)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                "token_file", "トークンのファイルを読めません", f"cannot read {path} ({exc.strerror})"
            ) from exc
        if not token:
            raise ConfigError("token_file", "トークンのファイルが空です", f"{path} is empty")
    if not token:
        raise ConfigError(
            "token",
            "機器トークン（token か token_file）が必要です",
            "a device token (token or token_file) is required",
        )
    if any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError(
            "token",
            "トークンに空白や制御文字は使えません",
            "the token must not contain spaces or control characters",
        )

    data_dir = _path(_str(data, "data_dir", "data_dir", required=True), base_dir)

    printers = _table(data, "printers", "printers") or {}
    _unknown(printers, {"receipt", "office"}, "printers.")
    receipt_table = _table(printers, "receipt", "printers.receipt")
    receipt = _receipt(receipt_table) if receipt_table is not None else None
    office_table = _table(printers, "office", "printers.office")
    office = _office(office_table) if office_table is not None else None

    card_table = _table(data, "card_reader", "card_reader")
    card_reader = None
    if card_table is not None:
        _unknown(card_table, {"enabled", "reader", "poll_seconds"}, "card_reader.")
        card_reader = CardReaderConfig(
            enabled=_bool(card_table, "enabled", "card_reader.enabled", True),
            reader=_str(card_table, "reader", "card_reader.reader"),
            poll_seconds=_number(
                card_table, "poll_seconds", "card_reader.poll_seconds", 0.5, minimum=0.05, maximum=10
            ),
        )

    light = _light(data.get("signal_light"), base_dir)
    scanner_table = _table(data, "scanner", "scanner")
    scanner = _scanner(scanner_table) if scanner_table is not None else None

    log_level = _str(data, "log_level", "log_level", default="info").lower()
    if log_level not in _LOG_LEVELS:
        raise ConfigError(
            "log_level",
            f"{' / '.join(_LOG_LEVELS)} のどれかを指定してください",
            f"must be one of {', '.join(_LOG_LEVELS)}",
        )

    return BridgeConfig(
        server_url=server_url,
        token=token,
        data_dir=data_dir,
        receipt=receipt,
        office=office,
        card_reader=card_reader,
        signal_light=light,
        scanner=scanner,
        heartbeat_seconds=_number(
            data, "heartbeat_seconds", "heartbeat_seconds", 15, minimum=0.1, maximum=3600
        ),
        retry_seconds=_number(data, "retry_seconds", "retry_seconds", 3, minimum=0.05, maximum=600),
        request_timeout=_number(data, "request_timeout", "request_timeout", 10, minimum=0.5, maximum=300),
        stream_timeout=_number(data, "stream_timeout", "stream_timeout", 45, minimum=1, maximum=3600),
        log_level=log_level,
    )


def _receipt(table: Mapping[str, Any]) -> ReceiptConfig:
    from device_bridge.drivers.receipt import ReceiptPrinterConfig

    kind = table.get("kind")
    if kind not in ("network", "usb", "serial"):
        raise ConfigError(
            "printers.receipt.kind",
            "network / usb / serial のどれかを指定してください",
            "must be network, usb or serial",
        )
    try:
        ReceiptPrinterConfig.from_dict(table)
    except ValueError as exc:
        raise ConfigError("printers.receipt", "レシートプリンターの設定が正しくありません", str(exc)) from exc
    return ReceiptConfig(options=dict(table))


def _office(table: Mapping[str, Any]) -> OfficeConfig:
    from device_bridge.drivers.office import OfficePrinterConfig

    queue = _str(table, "queue", "printers.office.queue", required=True).strip()
    if not queue:
        raise ConfigError(
            "printers.office.queue", "CUPS のキュー名を指定してください", "the CUPS queue name is required"
        )
    duplex_value = table.get("duplex")
    duplex: Literal["long", "short", "off"] | None
    if duplex_value is None:
        duplex = None
    elif duplex_value is False or duplex_value == "off":
        duplex = "off"
    elif duplex_value is True or duplex_value == "long":
        duplex = "long"
    elif duplex_value == "short":
        duplex = "short"
    else:
        raise ConfigError(
            "printers.office.duplex",
            "long / short / off のどれかを指定してください",
            "must be long, short or off",
        )
    tray = table.get("tray")
    if tray is not None and (not isinstance(tray, str) or not tray.strip()):
        raise ConfigError("printers.office.tray", "トレイ名を文字列で指定してください", "must be a tray name")
    options = {k: v for k, v in table.items() if k not in ("duplex", "tray")}
    try:
        OfficePrinterConfig.from_dict(options)
    except ValueError as exc:
        raise ConfigError("printers.office", "事務用プリンターの設定が正しくありません", str(exc)) from exc
    return OfficeConfig(queue=queue, duplex=duplex, tray=tray.strip() if tray else None, options=options)


def _light(value: Any, base_dir: Path) -> LightConfig | None:
    if value is None or value is False:
        return None
    if value == "simulated":
        return LightConfig(kind="simulated")
    if not isinstance(value, Mapping):
        raise ConfigError(
            "signal_light",
            '"simulated" か表（[signal_light]）で指定してください',
            'must be "simulated" or a table',
        )
    kind = value.get("kind")
    if kind == "simulated":
        _unknown(value, {"kind", "state_file"}, "signal_light.")
        state_file = _str(value, "state_file", "signal_light.state_file")
        return LightConfig(kind="simulated", state_file=_path(state_file, base_dir) if state_file else None)
    if kind != "serial":
        raise ConfigError(
            "signal_light.kind", "serial か simulated を指定してください", "must be serial or simulated"
        )
    from device_bridge.light import parse_bytes

    _unknown(value, {"kind", "device", "baudrate", "on", "off"}, "signal_light.")
    device = _str(value, "device", "signal_light.device", required=True)
    baudrate = int(_number(value, "baudrate", "signal_light.baudrate", 9600, minimum=300, maximum=921600))
    states: dict[str, bytes] = {}
    for key in ("on", "off"):
        text = _str(value, key, f"signal_light.{key}", required=True)
        try:
            states[key] = parse_bytes(text)
        except ValueError as exc:
            raise ConfigError(
                f"signal_light.{key}",
                '16進数のバイト列で指定してください（例: "A0 01 01 A2"）',
                'must be hex bytes, e.g. "A0 01 01 A2"',
            ) from exc
    return LightConfig(kind="serial", device=device, baudrate=baudrate, on=states["on"], off=states["off"])


def _scanner(table: Mapping[str, Any]) -> ScannerConfig:
    from device_bridge.drivers.scanner import normalise_encoding

    kind = table.get("kind")
    if kind != "serial":
        raise ConfigError(
            "scanner.kind",
            "serial を指定してください（キーボード入力型のスキャナーは設定不要です）",
            'must be "serial" (keyboard-wedge scanners need no setting)',
        )
    _unknown(table, {"kind", "device", "baudrate", "terminator", "encoding", "prefix", "suffix"}, "scanner.")
    device = _str(table, "device", "scanner.device", required=True).strip()
    if not device:
        raise ConfigError(
            "scanner.device",
            "スキャナーのデバイス（例: /dev/ttyACM0）を指定してください",
            "the serial device (e.g. /dev/ttyACM0) is required",
        )
    baudrate_value = _number(table, "baudrate", "scanner.baudrate", 9600, minimum=300, maximum=921600)
    if baudrate_value != int(baudrate_value):
        raise ConfigError("scanner.baudrate", "整数で指定してください", "must be a whole number")
    terminator_name = _str(table, "terminator", "scanner.terminator", default="CR").strip().upper()
    if terminator_name not in _TERMINATORS:
        raise ConfigError(
            "scanner.terminator",
            "CR / LF / CRLF / TAB / none のどれかを指定してください",
            "must be CR, LF, CRLF, TAB or none",
        )
    encoding_name = _str(table, "encoding", "scanner.encoding", default="auto")
    try:
        encoding = normalise_encoding(encoding_name)
    except LookupError as exc:
        raise ConfigError(
            "scanner.encoding",
            "文字コードは auto / utf-8 / shift_jis などで指定してください",
            f"unknown encoding {encoding_name!r} (auto, utf-8, shift_jis, …)",
        ) from exc
    return ScannerConfig(
        kind="serial",
        device=device,
        baudrate=int(baudrate_value),
        terminator=_TERMINATORS[terminator_name],
        encoding=encoding,
        prefix=_str(table, "prefix", "scanner.prefix"),
        suffix=_str(table, "suffix", "scanner.suffix"),
    )
