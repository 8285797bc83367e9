"""The kiosk's card check on the bridge: verify the PIN once, sign the server's nonce, read the cert.

Answers the server's transient ``card.authenticate`` command. The PIN arrives in the command,
is handed to the card exactly once and is never retried, logged or kept; a wrong PIN is
reported with the tries left, a blocked card as such, so the kiosk can send the resident to the
counter before the card could lock.
"""

from __future__ import annotations

import base64
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


def authenticate_card(reader_filter: str | None, nonce: bytes, pin: str) -> dict[str, Any]:
    """Run the check against the card on the reader; the answer for POST /devices/api/commands/{id}."""
    reader = PcscReader(reader_filter or None)
    try:
        try:
            transport = reader.connect()
        except (ReaderUnavailable, ReaderBusy):
            return {"ok": False, "error": "reader"}
        except CardRemovedError:
            return {"ok": False, "error": "no_card"}
        return authenticate_with(MyNumberCard(transport), nonce, pin)
    finally:
        reader.close()  # resets the card: a verified PIN must not outlive this one check


def authenticate_with(card: MyNumberCard, nonce: bytes, pin: str) -> dict[str, Any]:
    """The check on a connected card (a reader's, or the simulator's straight in tests)."""
    try:
        card.require_my_number_card()
        if card.auth_pin_tries_left() == 0:
            return {"ok": False, "error": "blocked", "tries_left": 0}
        card.verify_auth_pin(pin)
        signature = card.sign_with_auth_key(nonce)
        certificate = card.read_auth_certificate()
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
    return {
        "ok": True,
        "signature": base64.b64encode(signature).decode(),
        "certificate": base64.b64encode(certificate).decode(),
    }
