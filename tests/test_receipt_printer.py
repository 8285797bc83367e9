"""Receipt printer driver ↔ the simulated ESC/POS printer, over real TCP on 127.0.0.1.

QR codes on the simulator's PNGs are read back with zxing-cpp, a decoder that shares nothing with
the code that drew them (segno).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageChops, ImageFont

import device_bridge.drivers.receipt as receipt_module
from device_bridge.drivers.receipt import (
    PrinterStatus,
    PrinterUnavailable,
    Receipt,
    ReceiptLine,
    ReceiptPrinter,
    ReceiptPrinterConfig,
    build_receipt_bytes,
    decode_status,
    find_font,
    raster_commands,
    render_receipt,
    wrap_text,
)
from device_bridge.simulators.escpos_printer import EscposPrinterSimulator

QR_PAYLOAD = "https://madoguchi.example/r/7f3a9c?n=012"

RECEIPT = Receipt(
    title="○○市役所 市民課",
    number="012",
    lines=[
        ReceiptLine("住民票の写し　1通"),
        ReceiptLine("令和8年11月21日（土）10:15"),
        ReceiptLine("お呼びするまで、しばらくお待ちください。番号が表示されたら窓口へお越しください。"),
        ReceiptLine("手数料 300円", size="large", align="right", bold=True),
    ],
    qr=QR_PAYLOAD,
    footer=[ReceiptLine("QRコードで呼び出し状況を確認できます", align="center")],
)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[EscposPrinterSimulator]:
    with EscposPrinterSimulator(port=0, out_dir=tmp_path / "receipts", paper_mm=80) as printer:
        yield printer


@pytest.fixture
def sim58(tmp_path: Path) -> Iterator[EscposPrinterSimulator]:
    with EscposPrinterSimulator(port=0, out_dir=tmp_path / "receipts58", paper_mm=58) as printer:
        yield printer


def decode_qr(path: Path | None) -> list[str]:
    assert path is not None
    with Image.open(path) as image:
        return decode_qr_image(image)


def decode_qr_image(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image.convert("L"))]


def ink(image: Image.Image) -> int:
    """Number of printed (black) pixels."""
    return image.convert("L").histogram()[0]


# --- printing ----------------------------------------------------------------------------------


def test_japanese_receipt_prints_to_png_and_the_qr_reads_back(sim: EscposPrinterSimulator) -> None:
    printer = ReceiptPrinter.from_config(sim.driver_config())
    printer.print_receipt(RECEIPT)

    [receipt] = sim.wait_for_receipts(1, timeout=10)
    assert sim.out_dir is not None and receipt.png == sim.out_dir / "receipt-1.png"
    assert receipt.png is not None and receipt.png.is_file()
    assert receipt.width == 576
    assert receipt.cut == "partial"
    assert decode_qr(receipt.png) == [QR_PAYLOAD]

    # The paper shows exactly the raster the driver rendered (Japanese text in IPAex Gothic).
    expected = render_receipt(RECEIPT, 576).point(lambda v: 255 if v >= 128 else 0)
    with Image.open(receipt.png) as png:
        printed = png.convert("L").crop((0, 0, 576, expected.height))
    assert ImageChops.difference(printed, expected).getbbox() is None
    assert ink(expected) > 10_000

    sidecar = json.loads(receipt.json.read_text(encoding="utf-8")) if receipt.json else {}
    assert sidecar["index"] == 1
    assert sidecar["png"] == "receipt-1.png"
    assert sidecar["cut"] == "partial"
    assert sidecar["rasters"] and all(r["width"] == 576 for r in sidecar["rasters"])
    assert sidecar["unknown"] == []
    # After print_receipt returns, the printer has answered a status request sent after the data.
    assert printer.last_status is not None and printer.last_status.can_print


def test_connection_api_sends_prepared_bytes(sim: EscposPrinterSimulator) -> None:
    printer = ReceiptPrinter.from_config(sim.driver_config())
    data = printer.build(Receipt(number="077", qr="Q077"))
    with printer.connect() as connection:
        assert connection.status().can_print
        connection.send(data)
        assert connection.status().can_print  # answered after the printer has parsed everything
        assert len(sim.receipts) == 1
    assert decode_qr(sim.receipts[0].png) == ["Q077"]


def test_58mm_paper(sim58: EscposPrinterSimulator) -> None:
    printer = ReceiptPrinter.from_config(sim58.driver_config())
    assert printer.width == 384
    printer.print_receipt(RECEIPT)

    [receipt] = sim58.wait_for_receipts(1, timeout=10)
    assert receipt.width == 384
    assert all(raster.width == 384 for raster in receipt.rasters)
    assert decode_qr(receipt.png) == [QR_PAYLOAD]


def test_native_qr_code(sim: EscposPrinterSimulator) -> None:
    printer = ReceiptPrinter.from_config(sim.driver_config(qr="native"))
    printer.print_receipt(RECEIPT)

    [receipt] = sim.wait_for_receipts(1, timeout=10)
    assert receipt.qr == [QR_PAYLOAD]  # parsed from GS ( k by the simulator
    assert decode_qr(receipt.png) == [QR_PAYLOAD]


def test_qr_auto_follows_the_profile() -> None:
    assert not ReceiptPrinter.from_config({"kind": "network", "host": "h"}).native_qr
    assert ReceiptPrinter.from_config({"kind": "network", "host": "h", "profile": "TM-T88V"}).native_qr
    assert not ReceiptPrinter.from_config({"kind": "network", "host": "h", "profile": "TM-U220"}).native_qr


def test_kanji_text_mode_sends_shift_jis_and_rasters_what_it_cannot(sim: EscposPrinterSimulator) -> None:
    receipt_in = Receipt(
        title="市民課",
        lines=[ReceiptLine("住民票の写し　1通"), ReceiptLine("𠮷田 様"), ReceiptLine("ﾊﾝｶｸ ｶﾅ abc")],
        qr=QR_PAYLOAD,
        cut="full",
    )
    printer = ReceiptPrinter.from_config(sim.driver_config(text="kanji", qr="native"))
    printer.print_receipt(receipt_in)

    [receipt] = sim.wait_for_receipts(1, timeout=10)
    assert receipt.texts == ["市民課", "住民票の写し\u30001通", "ﾊﾝｶｸ ｶﾅ abc"]
    assert len(receipt.rasters) >= 1  # 𠮷 is not in Shift_JIS: that line went out as an image
    assert receipt.cut == "full"
    assert decode_qr(receipt.png) == [QR_PAYLOAD]


def test_receipts_follow_one_another(sim: EscposPrinterSimulator) -> None:
    printer = ReceiptPrinter.from_config(sim.driver_config())
    for number in ("001", "002", "003"):
        printer.print_receipt(
            Receipt(title="市民課", number=number, qr=f"https://madoguchi.example/r/{number}")
        )
    receipts = sim.wait_for_receipts(3, timeout=10)
    assert [r.index for r in receipts] == [1, 2, 3]
    assert [decode_qr(r.png) for r in receipts] == [
        [f"https://madoguchi.example/r/{n}"] for n in ("001", "002", "003")
    ]
    assert sim.connections_served == 3


def test_drawn_lines_and_qr_codes_are_reused_without_changing_a_receipt() -> None:
    """The driver keeps drawn text lines and the last QR codes: a receipt built from the caches is
    byte for byte the one built afresh, and a new number or QR never shows an earlier one."""
    width = 576  # dots: 80 mm paper
    fresh = build_receipt_bytes(RECEIPT, width)
    other = replace(RECEIPT, number="013", qr="https://madoguchi.example/r/other?n=013")
    other_bytes = build_receipt_bytes(other, width)
    assert build_receipt_bytes(RECEIPT, width) == fresh
    assert other_bytes != fresh
    receipt_module._text_blocks.cache_clear()
    receipt_module._qr_symbol.cache_clear()
    assert build_receipt_bytes(other, width) == other_bytes
    assert decode_qr_image(render_receipt(other, width)) == [other.qr]


def test_bytes_arriving_in_small_pieces_print_the_same(sim: EscposPrinterSimulator) -> None:
    data = build_receipt_bytes(RECEIPT, 576, native_qr=True)
    with socket.create_connection(sim.address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, 4000, 7):  # the first few thousand bytes in 7-byte pieces
            sock.sendall(data[start : start + 7])
        sock.sendall(data[4000:])
        sock.sendall(b"\x10\x04\x01")  # and wait for the answer: all of it has been parsed
        assert sock.recv(1) == b"\x12"
    [receipt] = sim.wait_for_receipts(1, timeout=10)
    assert receipt.qr == [QR_PAYLOAD]
    assert receipt.byte_count > 10_000


def test_commands_from_python_escpos_itself(sim: EscposPrinterSimulator) -> None:
    """An independent ESC/POS generator: python-escpos's own text, style, QR, image and cut."""
    from escpos.printer import Dummy

    dummy = Dummy(profile="TM-T88V")
    dummy.set(align="center", bold=True, double_height=True)
    dummy.textln("MADOGUCHI")
    dummy.set_with_default()
    dummy.textln("No. 012")
    dummy.qr("https://madoguchi.example/q", native=True, size=6)
    dummy.image(Image.new("1", (64, 32), 0), impl="bitImageRaster")
    dummy.cut()
    with socket.create_connection(sim.address, timeout=5) as sock:
        sock.sendall(dummy.output)
    [receipt] = sim.wait_for_receipts(1, timeout=10)
    assert receipt.texts == ["MADOGUCHI", "No. 012"]
    assert receipt.qr == ["https://madoguchi.example/q"]
    assert [(r.width, r.height) for r in receipt.rasters] == [(64, 32)]
    assert receipt.unknown == []
    assert decode_qr(receipt.png) == ["https://madoguchi.example/q"]


def test_wrapping_keeps_punctuation_and_brackets_in_place() -> None:
    font = ImageFont.truetype(find_font(), 24)
    lines = wrap_text("受付日時　令和8年11月21日（土）10:15", font, 368)
    assert lines == ["受付日時\u3000令和8年11月21日", "（土）10:15"]
    lines = wrap_text(
        "お呼びするまで、しばらくお待ちください。番号が表示されたら3番窓口へお越しください。", font, 368
    )
    assert all(font.getlength(line) <= 368 for line in lines)
    assert not any(line[0] in "、。）」" for line in lines[1:])
    assert (
        "".join(lines)
        == "お呼びするまで、しばらくお待ちください。番号が表示されたら3番窓口へお越しください。"
    )


def test_image_data_never_carries_realtime_commands() -> None:
    # A row whose packed bytes are DLE EOT 1, DLE ENQ 2, DLE DC4 …: printers act on those anywhere.
    row = bytes([0x10, 0x04, 0x01, 0x10, 0x05, 0x02, 0x10, 0x14, 0x08, 0x00])
    bits = Image.frombytes("1", (80, 1), row)  # 1 = white in Pillow; invert so 1 = ink
    image = Image.eval(bits.convert("L"), lambda v: 255 - v)
    data = raster_commands(image)
    body = data[8:]
    assert b"\x10\x04" not in body and b"\x10\x05" not in body and b"\x10\x14" not in body


# --- status ------------------------------------------------------------------------------------


def test_decode_status_bytes() -> None:
    ready = decode_status(0x12, 0x12, 0x12, 0x12)
    assert ready == PrinterStatus(
        online=True, cover_open=False, paper_out=False, paper_near_end=False, error=False, raw=b"\x12" * 4
    )
    assert ready.can_print and ready.reasons == [] and ready.reason == ""

    paper_out = decode_status(0x1A, 0x32, 0x12, 0x7E)
    assert paper_out.paper_out and not paper_out.online and not paper_out.can_print
    assert paper_out.reasons == ["用紙切れ"]

    cover = decode_status(0x1A, 0x16, 0x12, 0x12)
    assert cover.cover_open and cover.reasons == ["カバーが開いています"]

    offline = decode_status(0x1A, 0x12, 0x12, 0x12)
    assert offline.reasons == ["オフライン"]

    near_end = decode_status(0x12, 0x12, 0x12, 0x1E)
    assert near_end.can_print and near_end.paper_near_end and near_end.warnings == ["用紙が残りわずかです"]

    cutter = decode_status(0x1A, 0x52, 0x1A, 0x12)
    assert cutter.error and cutter.autocutter_error and "オートカッター" in cutter.reason

    with pytest.raises(ValueError):
        decode_status(0x00, 0x12, 0x12, 0x12)


def test_status_from_the_simulator(sim: EscposPrinterSimulator) -> None:
    printer = ReceiptPrinter.from_config(sim.driver_config())
    assert printer.status().can_print
    sim.set_paper_near_end(True)
    status = printer.status()
    assert status.can_print and status.warnings == ["用紙が残りわずかです"]
    sim.set_paper_out(True)
    status = printer.status()
    assert status.paper_out and not status.online and status.reason == "用紙切れ"
    sim.set_paper_out(False)
    sim.set_cover_open(True)
    assert printer.status().cover_open


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("paper_out", "用紙切れ"),
        ("cover_open", "カバーが開いています"),
        ("offline", "オフライン"),
        ("autocutter", "オートカッターのエラー（紙詰まりを確認してください）"),
    ],
)
def test_cannot_print_raises_with_the_reason_and_sends_nothing(
    sim: EscposPrinterSimulator, condition: str, reason: str
) -> None:
    if condition == "paper_out":
        sim.set_paper_out(True)
    elif condition == "cover_open":
        sim.set_cover_open(True)
    elif condition == "offline":
        sim.set_offline(True)
    else:
        sim.set_error("autocutter")
    printer = ReceiptPrinter.from_config(sim.driver_config())
    with pytest.raises(PrinterUnavailable) as caught:
        printer.print_receipt(RECEIPT)
    assert caught.value.reason == reason
    assert str(caught.value) == reason
    assert sim.receipts == []
    assert sim.discarded_bytes == 0  # checked before sending: nothing went out


def test_simulator_discards_what_arrives_while_paper_is_out(sim: EscposPrinterSimulator) -> None:
    blind = ReceiptPrinter.from_config(sim.driver_config(check_status=False))
    sim.set_paper_out(True)
    blind.print_receipt(RECEIPT)
    sim.wait_until_idle(timeout=10, served=1)
    sim.set_paper_out(False)
    with pytest.raises(TimeoutError):
        sim.wait_for_receipts(1, timeout=0.3)
    assert sim.discarded_bytes > 10_000

    blind.print_receipt(Receipt(title="市民課", number="013"))
    [receipt] = sim.wait_for_receipts(1, timeout=10)
    assert receipt.index == 1  # the refused receipt never comes out


def test_unreachable_printer_raises_printer_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    printer = ReceiptPrinter.from_config({"kind": "network", "host": "127.0.0.1", "port": port, "timeout": 1})
    with pytest.raises(PrinterUnavailable) as caught:
        printer.print_receipt(RECEIPT)
    assert "接続できません" in caught.value.reason
    with pytest.raises(PrinterUnavailable):
        printer.status()


def test_printer_that_never_answers_status_times_out() -> None:
    # Accepts connections (the kernel does, from the backlog) but never reads or answers.
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(4)
        config = {"kind": "network", "host": "127.0.0.1", "port": mute.getsockname()[1], "timeout": 0.3}
        printer = ReceiptPrinter.from_config(config)
        with pytest.raises(PrinterUnavailable) as caught:
            printer.print_receipt(RECEIPT)
        assert caught.value.reason == "レシートプリンターが応答しません"


def test_printer_can_be_shared_between_threads(sim: EscposPrinterSimulator) -> None:
    printer = ReceiptPrinter.from_config(sim.driver_config())
    errors: list[BaseException] = []

    def work(number: str) -> None:
        try:
            printer.print_receipt(Receipt(number=number, qr=f"Q{number}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"{n:03d}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    receipts = sim.wait_for_receipts(4, timeout=10)
    assert sorted(q for r in receipts for q in decode_qr(r.png)) == [f"Q{n:03d}" for n in range(4)]


# --- configuration and constructors (no hardware) ----------------------------------------------


def test_usb_constructor_builds_an_escpos_usb_printer() -> None:
    from escpos.printer import Usb

    printer = ReceiptPrinter.from_config(
        {"kind": "usb", "vendor": 0x04B8, "product": "0x0202", "paper_mm": 58}
    )
    device = printer.make_device()
    assert isinstance(device, Usb)
    assert device.usb_args == {"idVendor": 0x04B8, "idProduct": 0x0202}
    assert (device.in_ep, device.out_ep) == (0x82, 0x01)
    assert printer.width == 384
    assert printer.describe() == "USB 04b8:0202"


def test_serial_constructor_builds_an_escpos_serial_printer() -> None:
    from escpos.printer import Serial

    printer = ReceiptPrinter.from_config({"kind": "serial", "device": "/dev/ttyUSB0", "baudrate": 38400})
    device = printer.make_device()
    assert isinstance(device, Serial)
    assert (device.devfile, device.baudrate) == ("/dev/ttyUSB0", 38400)
    assert printer.width == 576


def test_network_constructor_builds_an_escpos_network_printer() -> None:
    from escpos.printer import Network

    printer = ReceiptPrinter.from_config({"kind": "network", "host": "192.0.2.10", "profile": "TM-T88V"})
    device = printer.make_device()
    assert isinstance(device, Network)
    assert (device.host, device.port) == ("192.0.2.10", 9100)
    assert device.profile.profile_data["name"] == "TM-T88V"


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"kind": "bluetooth"},
        {"kind": "network"},
        {"kind": "network", "host": "h", "port": 70000},
        {"kind": "network", "host": "h", "paper_mm": 72},
        {"kind": "network", "host": "h", "vendor": 1},
        {"kind": "network", "host": "h", "qr": "sometimes"},
        {"kind": "network", "host": "h", "profile": "no-such-printer"},
        {"kind": "usb", "vendor": 0x04B8},
        {"kind": "usb", "vendor": "epson", "product": 1},
        {"kind": "serial"},
        {"kind": "serial", "device": "/dev/ttyS0", "baudrate": 12345},
    ],
)
def test_bad_configurations_are_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ReceiptPrinterConfig.from_dict(config)


def test_receipt_from_a_print_job_payload() -> None:
    receipt = Receipt.from_dict(
        {
            "title": "市民課",
            "number": 12,
            "lines": [
                "住民票の写し",
                {"text": "合計 300円", "size": "large", "align": "right", "bold": True},
            ],
            "qr": QR_PAYLOAD,
            "cut": "full",
        }
    )
    assert receipt.number == "12"
    assert receipt.lines == (ReceiptLine("住民票の写し"), ReceiptLine("合計 300円", "large", "right", True))
    assert receipt.cut == "full"
    for bad in (
        {"lines": "text"},
        {"cut": "half"},
        {"colour": "red"},
        {"lines": [{"text": "x", "size": "huge"}]},
    ):
        with pytest.raises(ValueError):
            Receipt.from_dict(bad)
