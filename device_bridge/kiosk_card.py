"""The kiosk's card commands on the bridge.

- ``card.authenticate``: verify the 利用者証明用暗証番号 once, sign the server's nonce, read the
  certificate (`authenticate_card`);
- ``card.read_face``: verify the 券面事項入力補助用暗証番号 once, read 基本4情報 (name, address,
  birth date, sex) and the 利用者証明用 certificate, which needs no PIN (`read_face_card`).

Both answer a transient command from the server. The PIN arrives in the command, is handed to
the card exactly once and is never retried, logged or kept; a wrong PIN is reported with the
tries left, a blocked card as such, so the kiosk can send the resident to the counter before
the card could lock. The reader is closed (and the card reset) after every command.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from typing import Any

from device_bridge.drivers.apdu import (
    CardBlocked,
    CardError,
    CardRemovedError,
    InvalidPinFormat,
    UnsupportedCard,
    WrongPin,
)
from device_bridge.drivers.mynumber import MyNumberCard
from device_bridge.drivers.pcsc import PcscReader, ReaderBusy, ReaderUnavailable


def _on_reader(reader_filter: str | None, use: Callable[[MyNumberCard], dict[str, Any]]) -> dict[str, Any]:
    """Connect to the card on the reader, run `use`, and always close (which resets the card: a
    verified PIN must not outlive the one check or read it was given for)."""
    reader = PcscReader(reader_filter or None)
    try:
        try:
            transport = reader.connect()
        except (ReaderUnavailable, ReaderBusy):
            return {"ok": False, "error": "reader"}
        except CardRemovedError:
            return {"ok": False, "error": "no_card"}
        return use(MyNumberCard(transport))
    finally:
        reader.close()


def _one_try(
    card: MyNumberCard, tries_left: Callable[[], int], act: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """One PIN try on a My Number Card, with its outcome as the answer. A blocked AP is reported
    without a try; nothing is ever retried."""
    try:
        card.require_my_number_card()
        if tries_left() == 0:
            return {"ok": False, "error": "blocked", "tries_left": 0}
        return act()
    except InvalidPinFormat:
        return {"ok": False, "error": "invalid_pin"}
    except WrongPin as wrong:
        if wrong.tries_left == 0:
            return {"ok": False, "error": "blocked", "tries_left": 0}
        return {"ok": False, "error": "wrong_pin", "tries_left": wrong.tries_left}
    except CardBlocked:
        return {"ok": False, "error": "blocked", "tries_left": 0}
    except UnsupportedCard:
        return {"ok": False, "error": "unsupported"}
    except CardRemovedError:
        return {"ok": False, "error": "removed"}
    except CardError:
        return {"ok": False, "error": "reader"}


def authenticate_card(reader_filter: str | None, nonce: bytes, pin: str) -> dict[str, Any]:
    """Run the check against the card on the reader; the answer for POST /devices/api/commands/{id}."""
    return _on_reader(reader_filter, lambda card: authenticate_with(card, nonce, pin))


def authenticate_with(card: MyNumberCard, nonce: bytes, pin: str) -> dict[str, Any]:
    """The check on a connected card (a reader's, or the simulator's straight in tests)."""

    def sign() -> dict[str, Any]:
        card.verify_auth_pin(pin)
        signature = card.sign_with_auth_key(nonce)
        certificate = card.read_auth_certificate()
        return {
            "ok": True,
            "signature": base64.b64encode(signature).decode(),
            "certificate": base64.b64encode(certificate).decode(),
        }

    return _one_try(card, card.auth_pin_tries_left, sign)


def read_face_card(reader_filter: str | None, pin: str) -> dict[str, Any]:
    """Read the card face (券面事項入力補助AP) from the card on the reader; the answer for
    POST /devices/api/commands/{id}."""
    return _on_reader(reader_filter, lambda card: read_face_with(card, pin))


def read_face_with(card: MyNumberCard, pin: str) -> dict[str, Any]:
    """Read 基本4情報 with one try of the 券面事項入力補助用暗証番号, then the 利用者証明用
    certificate (no PIN) so the server can match the registry by its serial.

    A blocked AP is reported without a try. The certificate is left out if it cannot be read;
    the face alone is still an answer.
    """

    def read() -> dict[str, Any]:
        face = card.read_card_face(pin)
        answer: dict[str, Any] = {
            "ok": True,
            "face": {
                "name": face.name,
                "address": face.address,
                "birth_date": face.birth_date.isoformat() if face.birth_date else None,
                "birth_text": face.birth_text,
                "sex": face.sex,
            },
        }
        # Without the certificate the face is still an answer; the server just cannot match the
        # registry. Selecting the JPKI AP also ends the 券面事項入力補助AP's verified state.
        with contextlib.suppress(CardError):
            answer["auth_certificate"] = base64.b64encode(card.read_auth_certificate()).decode()
        return answer

    return _one_try(card, card.kenhojo_pin_tries_left, read)
