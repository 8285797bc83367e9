"""宛名番号 (resident address number) with a modulus-11 check digit, weights 2–7 from the right."""

from __future__ import annotations

WEIGHTS = (2, 3, 4, 5, 6, 7)


def check_digit(body: str) -> int:
    """Check digit for the digits in `body` (modulus 11, weights 2,3,4,5,6,7,2,3,… from the right).

    A remainder of 0 or 1 gives 0; otherwise the digit is 11 - remainder.
    """
    if not body.isdigit() or not body.isascii():
        raise ValueError(f"宛名番号 must be ASCII digits: {body!r}")
    total = sum(int(digit) * WEIGHTS[i % len(WEIGHTS)] for i, digit in enumerate(reversed(body)))
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def with_check_digit(body: str) -> str:
    return body + str(check_digit(body))


def is_valid(number: str) -> bool:
    if len(number) < 2 or not number.isdigit() or not number.isascii():
        return False
    return check_digit(number[:-1]) == int(number[-1])
