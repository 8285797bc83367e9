"""Demo console: put a demo resident's simulated My Number Card in a virtual reader.

    uv run python -m device_bridge.simulators.card_console              # interactive
    uv run python -m device_bridge.simulators.card_console insert 000000012345
    uv run python -m device_bridge.simulators.card_console reset 000000012345
    uv run python -m device_bridge.simulators.card_console list

Needs pcscd with vsmartcard's vpcd driver (Debian: pcscd, vsmartcard-vpcd); the card appears in
reader "Virtual PCD 00 00" (port 35963) or "Virtual PCD 00 01" (--slot 1). Demo PINs:
利用者証明用 1234, 券面事項入力補助用 1234, 署名用パスワード ABC123.

`CardConsole` holds the logic so a web console can drive the same operations.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from app.db import Database
from device_bridge.drivers.mynumber import JPKI_AID, KENHOJO_AID
from device_bridge.simulators.card_store import (
    DEFAULT_DATA_DIR,
    DEMO_AUTH_PIN,
    DEMO_KENHOJO_PIN,
    DEMO_SIGN_PASSWORD,
    CardHolder,
    CardStore,
    NoCardIssued,
)
from device_bridge.simulators.mynumber_card import OtherCard, SimulatedMyNumberCard
from device_bridge.simulators.vpcd import VPCD_PORT, VpcdLink

__all__ = ["CardConsole", "CardStatus", "main"]


@dataclass(frozen=True, slots=True)
class CardStatus:
    """What is in the virtual reader. Tries are None when no My Number Card is inserted."""

    inserted: bool
    kind: str  # "mynumber", "other" or ""
    serial: str = ""
    atena_number: str = ""
    name: str = ""
    connected: bool = False  # vpcd holds the connection (pcscd sees the card)
    auth_pin_tries: int | None = None
    kenhojo_pin_tries: int | None = None
    sign_password_tries: int | None = None


class CardConsole:
    """Insert / remove / reset demo cards in one vpcd slot. Thread-safe; close() when done."""

    def __init__(self, store: CardStore, db: Database | None = None, *, port: int = VPCD_PORT) -> None:
        self.store = store
        self.db = db
        self.port = port
        self._link: VpcdLink | None = None
        self._card: SimulatedMyNumberCard | OtherCard | None = None
        self._holder: CardHolder | None = None
        self._lock = threading.Lock()

    def _require_db(self) -> Database:
        if self.db is None:
            raise RuntimeError("CardConsole needs a database to look residents up")
        return self.db

    @property
    def link(self) -> VpcdLink:
        if self._link is None:
            self._link = VpcdLink(port=self.port)
        return self._link

    def insert(self, atena_number: str, *, wait: float = 1.0) -> CardStatus:
        """Insert the card of the resident with this 宛名番号 (NoCardIssued if they have none).

        Waits up to `wait` seconds for pcscd to pick the card up (it polls every 0.4 s).
        """
        holder = self.store.load_holder(self._require_db(), atena_number)
        card = self.store.card(holder)
        with self._lock:
            self._card, self._holder = card, holder
            link = self.link
            link.insert(card)
        link.wait_connected(wait)
        return self.status()

    def insert_other_card(self, *, wait: float = 1.0) -> CardStatus:
        """Insert a card that is not a My Number Card (the bridge must say it cannot read it)."""
        with self._lock:
            self._card, self._holder = OtherCard(), None
            link = self.link
            link.insert(self._card)
        link.wait_connected(wait)
        return self.status()

    def remove(self) -> CardStatus:
        with self._lock:
            self._card, self._holder = None, None
            if self._link is not None:
                self._link.remove()
        return self.status()

    def reset_pins(
        self, atena_number: str | None = None, *, restore_default_pins: bool = False
    ) -> CardStatus:
        """Reset the PIN counters (what the office does for a locked card); the inserted card by default."""
        with self._lock:
            inserted = self._card if isinstance(self._card, SimulatedMyNumberCard) else None
            if atena_number is None or (
                self._holder is not None and self._holder.atena_number == atena_number
            ):
                if inserted is None:
                    raise NoCardIssued("no My Number Card is inserted")
                inserted.reset_pin_counters(restore_default_pins=restore_default_pins)
                return self.status()
        card = self.store.card(self.store.load_holder(self._require_db(), atena_number))
        card.reset_pin_counters(restore_default_pins=restore_default_pins)
        return self.status()

    def status(self) -> CardStatus:
        card, holder = self._card, self._holder
        connected = self._link is not None and self._link.connected
        if isinstance(card, SimulatedMyNumberCard) and holder is not None:
            return CardStatus(
                inserted=True,
                kind="mynumber",
                serial=card.profile.serial,
                atena_number=holder.atena_number,
                name=holder.name,
                connected=connected,
                auth_pin_tries=card.tries_left(JPKI_AID, 0x0018),
                kenhojo_pin_tries=card.tries_left(KENHOJO_AID, 0x0011),
                sign_password_tries=card.tries_left(JPKI_AID, 0x001B),
            )
        if card is not None:
            return CardStatus(inserted=True, kind="other", connected=connected)
        return CardStatus(inserted=False, kind="")

    def holders(self, limit: int = 20) -> list[CardHolder]:
        return self.store.holders(self._require_db(), limit)

    def close(self) -> None:
        with self._lock:
            link, self._link = self._link, None
            self._card, self._holder = None, None
        if link is not None:
            link.close()

    def __enter__(self) -> CardConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- command line ----------------------------------------------------------------------------------


def _describe(status: CardStatus) -> str:
    if not status.inserted:
        return "カードなし (no card)"
    where = "pcscd connected" if status.connected else "waiting for pcscd/vpcd"
    if status.kind == "other":
        return f"My Number Card ではないカード ({where})"
    return (
        f"{status.name} 宛名番号 {status.atena_number} card {status.serial} ({where}); tries left: "
        f"利用者証明用 {status.auth_pin_tries}, 券面事項入力補助用 {status.kenhojo_pin_tries}, "
        f"署名用 {status.sign_password_tries}"
    )


_HELP = f"""commands:
  insert <宛名番号>   insert that resident's card
  other             insert a card that is not a My Number Card
  remove            take the card out
  reset [宛名番号]    reset PIN counters (inserted card by default)
  status            show the card in the reader
  list [n]          residents with a card
  quit
demo PINs: 利用者証明用 {DEMO_AUTH_PIN}, 券面事項入力補助用 {DEMO_KENHOJO_PIN}, 署名用 {DEMO_SIGN_PASSWORD}"""


def _interactive(console: CardConsole) -> int:
    print(_HELP)
    while True:
        try:
            line = input("card> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line:
            continue
        command, *args = line.split()
        try:
            if command in ("quit", "exit", "q"):
                return 0
            if command == "insert" and len(args) == 1:
                print(_describe(console.insert(args[0])))
            elif command == "other":
                print(_describe(console.insert_other_card()))
            elif command == "remove":
                print(_describe(console.remove()))
            elif command == "reset":
                print(_describe(console.reset_pins(args[0] if args else None)))
            elif command == "status":
                print(_describe(console.status()))
            elif command == "list":
                for holder in console.holders(int(args[0]) if args else 20):
                    print(f"{holder.atena_number}  {holder.name}  {holder.birth.isoformat()}")
            else:
                print(_HELP)
        except (NoCardIssued, ValueError, RuntimeError) as error:
            print(f"error: {error}")


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="card_console", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="cards and demo CA folder")
    parser.add_argument("--database-url", default="", help="registry database (default: the app's settings)")
    parser.add_argument(
        "--slot", type=int, default=0, choices=(0, 1), help="vpcd slot: 0 = Virtual PCD 00 00"
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="interactive console (default)")
    insert = sub.add_parser("insert", help="insert a card and keep it in until Ctrl-C")
    insert.add_argument("atena_number")
    reset = sub.add_parser("reset", help="reset a card's PIN counters")
    reset.add_argument("atena_number")
    reset.add_argument("--restore-default-pins", action="store_true")
    listing = sub.add_parser("list", help="residents with a card")
    listing.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)

    url = args.database_url
    if not url:
        from app.config import load_settings

        url = load_settings().effective_database_url
    db = Database(url)
    console = CardConsole(CardStore(args.data_dir), db, port=VPCD_PORT + args.slot)
    try:
        if args.command == "insert":
            print(_describe(console.insert(args.atena_number)))
            print("Ctrl-C removes the card")
            _wait_for_signal()
            return 0
        if args.command == "reset":
            console.reset_pins(args.atena_number, restore_default_pins=args.restore_default_pins)
            print("PIN counters reset")
            return 0
        if args.command == "list":
            for holder in console.holders(args.limit):
                print(f"{holder.atena_number}  {holder.name}  {holder.birth.isoformat()}")
            return 0
        return _interactive(console)
    except NoCardIssued as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        console.close()
        db.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
