"""The demo's devices: simulated printers and a card, real bridges, and a console to drive them.

`madoguchi serve --demo` starts this as a child process:

    python -m device_bridge.simulators.demo --server-url http://127.0.0.1:8000 --console-port 8001

For every terminal of the demo town it issues a fresh device token, starts what the terminal
would have plugged in — an ESC/POS printer simulator for kiosks and counters, a CUPS queue that
files PDFs for the back office, the simulated My Number Card on the first kiosk's (virtual)
reader — writes a bridge.toml and runs a real `madoguchi bridge` against the server. The console
(127.0.0.1 only) inserts and removes residents' cards, puts printers out of paper and shows
what was printed. Whatever cannot run here (no root for CUPS or pcscd) is skipped with a note.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from app.config import get_settings
from app.db import Database
from app.domain.registry import DeviceKind
from app.models import Device
from app.services import devices as device_service
from app.services.audit import Actor
from device_bridge.simulators.escpos_printer import EscposPrinterSimulator

log = logging.getLogger("madoguchi.demo.devices")
ACTOR = Actor(type="system", name="demo devices")
OFFICE_QUEUE = "madoguchi-demo"
CARD_READER = "Virtual PCD 00 00"


@dataclass
class Terminal:
    device_id: int
    code: str
    name: str
    kind: DeviceKind
    config_path: Path
    printer: EscposPrinterSimulator | None = None
    has_card_reader: bool = False
    has_office: bool = False
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0


@dataclass
class DemoDevices:
    server_url: str
    db: Database
    folder: Path
    terminals: list[Terminal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    console: Any = None  # CardConsole when the virtual reader works
    office_folder: Path | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    # Start-up ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.db.session() as session:
            devices = session.exec(
                select(Device).where(col(Device.revoked).is_(False)).order_by(col(Device.id))
            ).all()
        if not devices:
            raise SystemExit("no devices in the database: load the demo town first (madoguchi demo-data)")
        self._start_office()
        card_reader_taken = not self._start_card()
        for device in devices:
            assert device.id is not None
            terminal = Terminal(
                device_id=device.id,
                code=device.code,
                name=device.name,
                kind=device.kind,
                config_path=self.folder / "bridges" / f"{device.code}.toml",
            )
            if device.kind in (DeviceKind.KIOSK, DeviceKind.COUNTER):
                out = self.folder / "receipts" / device.code
                terminal.printer = self._stack.enter_context(EscposPrinterSimulator(port=0, out_dir=out))
                if not card_reader_taken and device.kind == DeviceKind.KIOSK:
                    terminal.has_card_reader = card_reader_taken = True
            else:
                terminal.has_office = self.office_folder is not None
            self._write_config(terminal, self._issue_token(device.id))
            self.terminals.append(terminal)
        for terminal in self.terminals:
            self._spawn(terminal)

    def _issue_token(self, device_id: int) -> str:
        with self.db.write_session() as session:
            token = device_service.rotate_token(session, ACTOR, device_id)
            session.commit()
        return token

    def _start_office(self) -> None:
        from device_bridge.simulators import office_printer

        folder = self.folder / "office"
        try:
            office_printer.setup(OFFICE_QUEUE, folder)
        except Exception as error:  # no root, no CUPS: the demo runs without office printing
            self.notes.append(f"事務用プリンター（CUPS）は使えません / office printing off: {error}")
            return
        self.office_folder = folder

    def _start_card(self) -> bool:
        try:
            from device_bridge.simulators.card_console import CardConsole
            from device_bridge.simulators.card_store import CardStore
            from device_bridge.simulators.vpcd import running_pcscd

            self._stack.enter_context(running_pcscd())
            self.console = CardConsole(CardStore(self.folder / "cards"), self.db, port=35963)
            _ = self.console.link  # connect to vpcd now, not on the first insert
        except Exception as error:  # no pcscd/vpcd or not root
            self.notes.append(f"カードリーダー（pcscd + vpcd）は使えません / card reader off: {error}")
            self.console = None
            return False
        return True

    def _write_config(self, terminal: Terminal, token: str) -> None:
        lines = [
            f'server_url = "{self.server_url}"',
            f'token = "{token}"',
            f'data_dir = "{(self.folder / "journals" / terminal.code).as_posix()}"',
            "heartbeat_seconds = 15",
            'signal_light = "simulated"',
        ]
        if terminal.printer is not None:
            lines += [
                "",
                "[printers.receipt]",
                'kind = "network"',
                'host = "127.0.0.1"',
                f"port = {terminal.printer.port}",
                "paper_mm = 80",
            ]
        if terminal.has_office:
            lines += ["", "[printers.office]", f'queue = "{OFFICE_QUEUE}"']
        lines += ["", "[card_reader]", f"enabled = {'true' if terminal.has_card_reader else 'false'}"]
        if terminal.has_card_reader:
            lines.append(f'reader = "{CARD_READER}"')
        terminal.config_path.parent.mkdir(parents=True, exist_ok=True)
        terminal.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        terminal.config_path.chmod(0o600)  # it holds the token

    def _spawn(self, terminal: Terminal) -> None:
        terminal.process = subprocess.Popen(
            [sys.executable, "-m", "device_bridge", "--config", str(terminal.config_path)],
            stdin=subprocess.DEVNULL,
        )

    # Running ----------------------------------------------------------------------------------

    def supervise(self, stop: threading.Event) -> None:
        """Restart a bridge that exits (as a service manager would on a terminal)."""
        while not stop.wait(1.0):
            for terminal in self.terminals:
                if terminal.process is not None and terminal.process.poll() is not None:
                    terminal.restarts += 1
                    log.warning(
                        "bridge %s exited (%s); restarting", terminal.code, terminal.process.returncode
                    )
                    self._spawn(terminal)

    def stop(self) -> None:
        for terminal in self.terminals:
            if terminal.process is not None and terminal.process.poll() is None:
                terminal.process.terminate()
        for terminal in self.terminals:
            if terminal.process is not None:
                try:
                    terminal.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    terminal.process.kill()
        if self.console is not None:
            with contextlib.suppress(Exception):
                self.console.remove()
            self.console.close()  # ends the vpcd link's thread
        self._stack.close()

    def terminal(self, code: str) -> Terminal:
        for terminal in self.terminals:
            if terminal.code == code:
                return terminal
        raise KeyError(code)


# Console ----------------------------------------------------------------------------------------


def build_console(devices: DemoDevices) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    form_token = secrets.token_urlsafe(16)

    def page(request: Request) -> Response:
        return HTMLResponse(_render(devices, form_token, request.query_params.get("msg", "")))

    async def act(request: Request) -> Response:
        form = await request.form()
        if form.get("token") != form_token:
            return HTMLResponse("フォームの有効期限が切れました。再読み込みしてください。", status_code=403)
        action = str(form.get("action", ""))
        message = ""
        try:
            message = _act(devices, action, form)
        except Exception as error:  # shown on the console; a demo tool, not a service
            message = f"エラー: {error}"
        return RedirectResponse(f"/?msg={_quote(message)}", status_code=303)

    def receipt_image(request: Request) -> Response:
        code = request.path_params["code"]
        name = request.path_params["name"]
        path = devices.folder / "receipts" / code / name
        if not name.endswith(".png") or "/" in name or not path.is_file():
            return Response(status_code=404)
        return FileResponse(path, media_type="image/png")

    return Starlette(
        routes=[
            Route("/", page),
            Route("/act", act, methods=["POST"]),
            Route("/receipts/{code}/{name}", receipt_image),
        ]
    )


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:300])


def _act(devices: DemoDevices, action: str, form: Any) -> str:
    if action == "insert" and devices.console is not None:
        status = devices.console.insert(str(form.get("atena", "")))
        return f"{status.name} さんのカードを置きました"
    if action == "other" and devices.console is not None:
        devices.console.insert_other_card()
        return "マイナンバーカード以外のカードを置きました"
    if action == "remove" and devices.console is not None:
        devices.console.remove()
        return "カードを取り外しました"
    if action == "reset" and devices.console is not None:
        devices.console.reset_pins(str(form.get("atena", "")) or None)
        return "暗証番号の試行回数を戻しました"
    if action in ("paper_out", "paper_in", "cover_open", "cover_close"):
        printer = devices.terminal(str(form.get("code", ""))).printer
        if printer is None:
            return "この端末にはレシートプリンターがありません"
        if action.startswith("paper"):
            printer.set_paper_out(action == "paper_out")
        else:
            printer.set_cover_open(action == "cover_open")
        return "プリンターの状態を変えました"
    return "その操作はできません"


def _render(devices: DemoDevices, token: str, message: str) -> str:
    esc = html.escape

    def button(action: str, label: str, **fields: str) -> str:
        hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields.items())
        return (
            f'<form method="post" action="/act" class="inline"><input type="hidden" name="token" value="{token}">'
            f'<input type="hidden" name="action" value="{esc(action)}">{hidden}<button>{esc(label)}</button></form>'
        )

    parts = [
        "<!doctype html><html lang='ja'><head><meta charset='utf-8'><title>デモ機器コンソール</title>",
        "<meta http-equiv='refresh' content='15'>",
        "<style>body{font-family:'IPAexGothic',sans-serif;margin:1rem 1.5rem;line-height:1.6}"
        "form.inline{display:inline}button{margin:.1rem;padding:.3rem .7rem}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ccc;padding:.25rem .5rem;text-align:left}.msg{background:#fff4e5;padding:.4rem}"
        "img{border:1px solid #999;max-height:300px;margin:.2rem}</style></head><body>",
        "<h1>デモ機器コンソール <small>/ Demo device console</small></h1>",
        "<p>ここで住民のカードを置いたり、プリンターを用紙切れにしたりできます（デモ専用）。</p>",
    ]
    if message:
        parts.append(f"<p class='msg' role='status'>{esc(message)}</p>")
    for note in devices.notes:
        parts.append(f"<p class='msg'>{esc(note)}</p>")
    if devices.console is not None:
        status = devices.console.status()
        reader = next((t.code for t in devices.terminals if t.has_card_reader), "")
        parts.append(f"<h2>カードリーダー（端末 {esc(reader)}）</h2>")
        if status.inserted:
            tries = "" if status.auth_pin_tries is None else f"（暗証番号 残り {status.auth_pin_tries} 回）"
            parts.append(
                f"<p>置かれているカード: {esc(status.name or 'マイナンバーカード以外')} {esc(tries)} "
            )
            parts.append(button("remove", "取り外す") + "</p>")
        else:
            parts.append(
                "<p>カードは置かれていません。 " + button("other", "マイナンバーカード以外を置く") + "</p>"
            )
        parts.append("<table><tr><th>宛名番号</th><th>氏名</th><th>生年月日</th><th></th></tr>")
        for holder in devices.console.holders(limit=15):
            parts.append(
                f"<tr><td>{esc(holder.atena_number)}</td><td>{esc(holder.name)}</td>"
                f"<td>{esc(str(holder.birth))}</td><td>{button('insert', 'カードを置く', atena=holder.atena_number)}"
                f"{button('reset', '試行回数を戻す', atena=holder.atena_number)}</td></tr>"
            )
        parts.append("</table><p>暗証番号（デモ）: 利用者証明用 1234 ／ 券面事項入力補助用 1234</p>")
    parts.append(
        "<h2>端末とプリンター</h2><table><tr><th>端末</th><th>種類</th><th>ブリッジ</th><th>プリンター</th></tr>"
    )
    for terminal in devices.terminals:
        alive = terminal.process is not None and terminal.process.poll() is None
        printer_cell = "—"
        if terminal.printer is not None:
            state = (
                "用紙切れ"
                if terminal.printer.paper_out
                else ("カバー開" if terminal.printer.cover_open else "正常")
            )
            printer_cell = (
                f"ESC/POS :{terminal.printer.port} {state} "
                + button("paper_out", "用紙切れにする", code=terminal.code)
                + button("paper_in", "用紙を補充", code=terminal.code)
                + button("cover_open", "カバーを開く", code=terminal.code)
                + button("cover_close", "カバーを閉じる", code=terminal.code)
            )
        elif terminal.has_office:
            printer_cell = f"CUPS {OFFICE_QUEUE} → {esc(str(devices.office_folder))}"
        parts.append(
            f"<tr><td>{esc(terminal.code)} {esc(terminal.name)}</td><td>{esc(terminal.kind.value)}</td>"
            f"<td>{'動作中' if alive else '停止'}（再起動 {terminal.restarts} 回）</td><td>{printer_cell}</td></tr>"
        )
    parts.append("</table><h2>最近のレシート</h2>")
    for terminal in devices.terminals:
        folder = devices.folder / "receipts" / terminal.code
        images = (
            sorted(folder.glob("receipt-*.png"), key=lambda p: p.stat().st_mtime)[-4:]
            if folder.exists()
            else []
        )
        for image in reversed(images):
            parts.append(
                f"<img alt='{esc(terminal.code)} {esc(image.name)}' src='/receipts/{esc(terminal.code)}/{esc(image.name)}'>"
            )
    parts.append("</body></html>")
    return "".join(parts)


# Entry point -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _console_server(app: Any, port: int) -> Iterator[None]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="demo-devices", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("--server-url", required=True)
    parser.add_argument("--console-port", type=int, default=8001)
    parser.add_argument("--folder", type=Path, default=None, help="default: <data_dir>/demo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    db = Database(settings.effective_database_url)
    devices = DemoDevices(
        args.server_url.rstrip("/"), db, (args.folder or settings.data_dir / "demo").resolve()
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        devices.start()
        with _console_server(build_console(devices), args.console_port):
            print(
                f"  デモ機器コンソール  Demo devices   : http://127.0.0.1:{args.console_port}/",
                flush=True,
            )
            for note in devices.notes:
                print(f"  ({note})", flush=True)
            devices.supervise(stop)
    finally:
        devices.stop()
        db.dispose()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
