"""Simulated My Number Cards for the demo residents in the registry.

A demo resident's card carries what the registry holds (氏名, 住所, 生年月日, 性別, and the
利用者証明用電子証明書 serial `auth_cert_serial`), a 個人番号 derived from the 宛名番号 (so the same
resident always gets the same number, with a valid check digit), keys and certificates from the
demo JPKI CA, and the demo PINs below. Everything lives under one folder (default var/cards/):

    ca/                   the demo CA (see jpki_ca.py), incl. cached card keys and certificates
    cards/<serial>/       card.json (issue date, セキュリティコード), state.json (PIN counters)

The demo PINs are public on purpose: they are printed by the console and in the docs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from app.db import Database
from app.models import Resident
from device_bridge.drivers.mynumber import my_number_check_digit
from device_bridge.simulators.jpki_ca import Holder, JpkiDemoCa, parse_serial
from device_bridge.simulators.mynumber_card import CardProfile, SimulatedMyNumberCard

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEMO_AUTH_PIN",
    "DEMO_KENHOJO_PIN",
    "DEMO_SIGN_PASSWORD",
    "CardHolder",
    "CardStore",
    "NoCardIssued",
    "demo_my_number",
]

DEFAULT_DATA_DIR = Path("var/cards")
DEMO_AUTH_PIN = "1234"
DEMO_KENHOJO_PIN = "1234"
DEMO_SIGN_PASSWORD = "ABC123"


class NoCardIssued(LookupError):
    """The resident has no My Number Card in the demo data (no certificate serial, no birth date)."""


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(("madoguchi-demo", *parts)).encode("utf-8")).digest()


def demo_my_number(atena_number: str) -> str:
    """A stable, valid-looking 個人番号 for a demo resident (never a real person's: demo data only)."""
    body = 10**10 + int.from_bytes(_digest("my-number", atena_number)[:8], "big") % (9 * 10**10)
    text = str(body)
    return text + str(my_number_check_digit(text))


def _card_serial(atena_number: str) -> str:
    return f"DEMO{atena_number}"


@dataclass(frozen=True, slots=True)
class CardHolder:
    """The registry facts a card is made from (decoupled from the ORM row)."""

    atena_number: str
    name: str
    address: str
    birth: date
    sex: str
    auth_cert_serial: str
    sign_cert_serial: str

    @classmethod
    def from_resident(cls, resident: Resident) -> CardHolder:
        if not resident.auth_cert_serial:
            raise NoCardIssued(f"宛名番号 {resident.atena_number}: no 利用者証明用電子証明書 serial")
        if resident.birth_date is None:
            raise NoCardIssued(f"宛名番号 {resident.atena_number}: birth date unknown")
        address = resident.address
        if resident.address_katagaki:
            address = f"{address}\u3000{resident.address_katagaki}"
        return cls(
            atena_number=resident.atena_number,
            name=resident.full_name,
            address=address,
            birth=resident.birth_date,
            sex=str(resident.sex),  # Sex is a StrEnum: "1" / "2"
            auth_cert_serial=resident.auth_cert_serial,
            sign_cert_serial=resident.sign_cert_serial,
        )

    @property
    def serial(self) -> str:
        return _card_serial(self.atena_number)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _card_expiry(birth: date, issued_on: date) -> date:
    """The holder's 10th birthday after issue (5th if under 18 at issue), as for real cards."""
    age = issued_on.year - birth.year - ((issued_on.month, issued_on.day) < (birth.month, birth.day))
    years = 10 if age >= 18 else 5
    return _add_years(birth, issued_on.year - birth.year + years)


class CardStore:
    """Builds and caches simulated cards for demo residents."""

    def __init__(self, data_dir: Path = DEFAULT_DATA_DIR, ca: JpkiDemoCa | None = None) -> None:
        self.data_dir = Path(data_dir)
        self._ca = ca

    @property
    def ca(self) -> JpkiDemoCa:
        if self._ca is None:
            self._ca = JpkiDemoCa.load_or_create(self.data_dir / "ca")
        return self._ca

    def card_folder(self, serial: str) -> Path:
        return self.data_dir / "cards" / serial

    def state_path(self, serial: str) -> Path:
        return self.card_folder(serial) / "state.json"

    def _card_facts(self, holder: CardHolder) -> tuple[date, str]:
        """Issue date and セキュリティコード, fixed the first time a card is made."""
        path = self.card_folder(holder.serial) / "card.json"
        if path.exists():
            facts = json.loads(path.read_text(encoding="utf-8"))
            return date.fromisoformat(facts["issued_on"]), str(facts["security_code"])
        seed = _digest("card", holder.atena_number)
        # Issued within the last ~2 years, so the 5-year certificate is valid for years yet.
        issued_on = datetime.now(UTC).date() - timedelta(days=int.from_bytes(seed[:2], "big") % 700 + 1)
        security_code = f"{int.from_bytes(seed[2:4], 'big') % 10000:04d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        facts = {"serial": holder.serial, "issued_on": issued_on.isoformat(), "security_code": security_code}
        path.write_text(json.dumps(facts, indent=1), encoding="utf-8")
        return issued_on, security_code

    def profile(self, holder: CardHolder) -> CardProfile:
        issued_on, security_code = self._card_facts(holder)
        sign_serial = holder.sign_cert_serial or f"{parse_serial(holder.auth_cert_serial) ^ 0x5A5A5A5A:X}"
        return CardProfile.issued(
            self.ca,
            holder.serial,
            Holder(holder.name, holder.address, holder.birth, holder.sex),
            holder.auth_cert_serial,
            sign_serial,
            not_before=datetime(issued_on.year, issued_on.month, issued_on.day, tzinfo=UTC),
            my_number=demo_my_number(holder.atena_number),
            auth_pin=DEMO_AUTH_PIN,
            kenhojo_pin=DEMO_KENHOJO_PIN,
            sign_password=DEMO_SIGN_PASSWORD,
            card_expiry=_card_expiry(holder.birth, issued_on),
            security_code=security_code,
        )

    def card(self, holder: CardHolder) -> SimulatedMyNumberCard:
        """The holder's card; its PIN counters persist in cards/<serial>/state.json."""
        return SimulatedMyNumberCard(self.profile(holder), self.state_path(holder.serial))

    # -- registry ------------------------------------------------------------------------------
    @staticmethod
    def load_holder(db: Database, atena_number: str) -> CardHolder:
        with db.session() as session:
            resident = session.exec(select(Resident).where(Resident.atena_number == atena_number)).first()
        if resident is None:
            raise NoCardIssued(f"宛名番号 {atena_number} is not in the registry")
        return CardHolder.from_resident(resident)

    @staticmethod
    def holders(db: Database, limit: int = 20) -> list[CardHolder]:
        """Some residents who have a card (for the console's list)."""
        with db.session() as session:
            rows = session.exec(
                select(Resident)
                .where(Resident.auth_cert_serial != "")
                .where(Resident.birth_date.is_not(None))  # type: ignore[union-attr]
                .order_by(Resident.atena_number)
                .limit(limit)
            ).all()
        return [CardHolder.from_resident(row) for row in rows]

    def card_for_atena(self, db: Database, atena_number: str) -> SimulatedMyNumberCard:
        return self.card(self.load_holder(db, atena_number))
