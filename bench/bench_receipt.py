"""Receipt printing: a typical reception receipt from the driver to the simulated printer.

    uv run python bench/bench_receipt.py                 # 50 receipts per variant
    uv run python bench/bench_receipt.py --count 200 --keep bench/out/receipts

Each variant prints the same kind of receipt (title, big reception number, five lines of
Japanese, a QR code, footer), each with its own number, time and QR code as at a kiosk (the
driver keeps drawn lines and the last QR codes: repeating one receipt would measure only those), through ``ReceiptPrinter.print_receipt`` to an ``EscposPrinterSimulator`` on
127.0.0.1 over TCP, and reports median / p95 / max of:

- ``render``: building the ESC/POS bytes (Pillow text rendering, QR, GS v 0 packing) alone;
- ``print``: the whole ``print_receipt`` call — render, connect, DLE EOT 1–4, send, and the
  DLE EOT after the data, which the simulator answers only once it has parsed everything and
  written the receipt's PNG + JSON; so this is driver and simulator together, end to end.

Variants: raster text + raster QR at 80 mm (the default), the same at 58 mm, native QR
(``GS ( k``), and Kanji text mode (Shift_JIS text, native QR). Loopback only; stops by itself.
A real printer adds its own transfer and print time (a 80 mm raster receipt is ~60 KB: a few ms
on Ethernet, ~15 s on a 38400 bps serial line — use ``"text": "kanji"`` there).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from device_bridge.drivers.receipt import (  # noqa: E402
    Receipt,
    ReceiptLine,
    ReceiptPrinter,
    build_receipt_bytes,
)
from device_bridge.simulators.escpos_printer import EscposPrinterSimulator  # noqa: E402

RECEIPT = Receipt(
    title="○○市役所 市民課",
    number="128",
    lines=[
        ReceiptLine("住民票の写し　2通"),
        ReceiptLine("印鑑登録証明書　1通"),
        ReceiptLine("受付日時　令和8年11月21日（土）10:15"),
        ReceiptLine("お呼びするまで、しばらくお待ちください。番号が表示されたら3番窓口へお越しください。"),
        ReceiptLine("手数料 900円", size="large", align="right", bold=True),
    ],
    qr="https://madoguchi.example/r/7f3a9c2e?n=128",
    footer=[ReceiptLine("QRコードで呼び出し状況を確認できます", align="center")],
)


def receipt_number(index: int) -> Receipt:
    """RECEIPT as the index-th of the day: its own number, reception time and QR code."""
    lines = list(RECEIPT.lines)
    lines[2] = ReceiptLine(f"受付日時　令和8年11月21日（土）{9 + index // 60 % 8}:{index % 60:02d}")
    return replace(
        RECEIPT,
        number=str(100 + index),
        lines=lines,
        qr=f"https://madoguchi.example/r/{index:08x}?n={100 + index}",
    )


VARIANTS: list[tuple[str, int, dict[str, object]]] = [
    ("raster text + raster QR, 80 mm", 80, {}),
    ("raster text + raster QR, 58 mm", 58, {}),
    ("raster text + native QR, 80 mm", 80, {"qr": "native"}),
    ("kanji text + native QR, 80 mm", 80, {"text": "kanji", "qr": "native"}),
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"median {statistics.median(ms):7.1f} ms   p95 {percentile(ms, 95):7.1f} ms   max {max(ms):7.1f} ms"
    )


def run(count: int, out_root: Path) -> None:
    print(f"{count} receipts per variant; simulator output under {out_root}\n")
    for name, paper_mm, extra in VARIANTS:
        out_dir = out_root / name.replace(" ", "").replace(",", "-").replace("+", "_")
        with EscposPrinterSimulator(port=0, out_dir=out_dir, paper_mm=paper_mm) as sim:
            printer = ReceiptPrinter.from_config(sim.driver_config(**extra))
            printer.print_receipt(RECEIPT)  # warm-up: fonts, caches, first connection
            sim.wait_for_receipts(1, timeout=30)
            render: list[float] = []
            total: list[float] = []
            size = 0
            for index in range(count):
                receipt = receipt_number(2 * index + 1)
                started = time.perf_counter()
                data = build_receipt_bytes(
                    receipt,
                    printer.width,
                    font_path=printer.font_path,
                    native_qr=printer.native_qr,
                    text_mode=printer.config.text,
                )
                render.append(time.perf_counter() - started)
                size = len(data)
                started = time.perf_counter()
                printer.print_receipt(receipt_number(2 * index + 2))
                total.append(time.perf_counter() - started)
            receipts = sim.wait_for_receipts(count + 1, timeout=60)
        print(f"{name}  ({size / 1024:.1f} KiB per receipt, {len(receipts)} printed)")
        print(f"  render  {summary(render)}")
        print(f"  print   {summary(total)}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="receipts per variant (default 50)")
    parser.add_argument("--keep", type=Path, help="write the simulator's PNG/JSON here and keep them")
    args = parser.parse_args()
    if args.keep:
        run(args.count, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-receipt-") as tmp:
            run(args.count, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
