"""Public verification of printed certificates: the QR URL and what the verify page may show.

Every page carries a QR code leading to `<base>/verify/<issue number>?h=<hash prefix>`. The URL
holds no personal data: only the 発行番号 (date, municipality, terminal, printer, serial, page)
and the first 16 hex digits of the certificate's document hash (`app.printing.certificates
.document_hash`: SHA-256 over the certificate's content, salted, as canonical JSON). The verify
page looks the issue number up in the issue history and shows `PublicVerification` — type, date,
pages, hash — never a name or an address, so a photo of the QR leaks nothing.

In the URL the issue number's spaces become "_" and the page's "/" becomes "-":
`20260421 999991 K01 P01 012 1/2` → `/verify/20260421_999991_K01_P01_012_1-2`.
Issue-number parts never contain "_" or "/" (`app.domain.certificates.issue_number` checks).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qs, quote, unquote, urlsplit

from app.domain.certificates import CertificateType, IssueNumber, parse_issue_number

__all__ = [
    "HASH_PREFIX_LENGTH",
    "PublicVerification",
    "VerificationRef",
    "hash_prefix_matches",
    "issue_number_from_slug",
    "issue_number_slug",
    "parse_verification_url",
    "verification_url",
]

HASH_PREFIX_LENGTH = 16  # 64 bits: enough to tell a forged page from a real one, short in a QR
_HEX = frozenset("0123456789abcdef")


def issue_number_slug(issue_number: str) -> str:
    """The URL path form of an issue number (validated, percent-encoded if it has non-ASCII)."""
    parse_issue_number(issue_number)
    head, page = issue_number.rsplit(" ", 1)
    return quote(head.replace(" ", "_") + "_" + page.replace("/", "-"), safe="_-")


def issue_number_from_slug(slug: str) -> str:
    """The issue number back from its URL form; ValueError if it is not one."""
    text = unquote(slug)
    head, sep, page = text.rpartition("_")
    if not sep or page.count("-") != 1:
        raise ValueError(f"not an issue-number slug: {slug!r}")
    issue_number = head.replace("_", " ") + " " + page.replace("-", "/")
    parse_issue_number(issue_number)
    return issue_number


def verification_url(base: str, issue_number: str, sha256: str) -> str:
    """`<base>/verify/<issue number slug>?h=<first 16 hex digits of sha256>`."""
    if not base.startswith(("https://", "http://")):
        raise ValueError(f"verify base URL must be http(s): {base!r}")
    digest = sha256.lower()
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise ValueError("sha256 must be 64 hex digits")
    return f"{base.rstrip('/')}/verify/{issue_number_slug(issue_number)}?h={digest[:HASH_PREFIX_LENGTH]}"


@dataclass(frozen=True, slots=True)
class VerificationRef:
    """What a scanned QR code says: which page of which copy, and the hash prefix to compare."""

    issue_number: str
    hash_prefix: str

    @property
    def parts(self) -> IssueNumber:
        return parse_issue_number(self.issue_number)

    @property
    def copy_key(self) -> str:
        """The issue number without its page: look-up key for the copy in the issue history."""
        return self.parts.copy_key


def parse_verification_url(url: str) -> VerificationRef:
    """Parse a URL made by `verification_url` (any base); ValueError if it is not one."""
    parts = urlsplit(url)
    prefix, sep, slug = parts.path.rpartition("/verify/")
    if not sep or not slug or "/" in slug:
        raise ValueError(f"not a verification URL: {url!r}")
    hashes = parse_qs(parts.query).get("h", [])
    if len(hashes) != 1:
        raise ValueError("verification URL needs exactly one h= parameter")
    hash_prefix = hashes[0].lower()
    if len(hash_prefix) != HASH_PREFIX_LENGTH or not set(hash_prefix) <= _HEX:
        raise ValueError("h= must be 16 hex digits")
    return VerificationRef(issue_number_from_slug(slug), hash_prefix)


def hash_prefix_matches(document_sha256: str, hash_prefix: str) -> bool:
    """Constant-time comparison of a recorded document hash with a scanned prefix."""
    if len(hash_prefix) != HASH_PREFIX_LENGTH:
        return False
    return hmac.compare_digest(document_sha256[:HASH_PREFIX_LENGTH].lower(), hash_prefix.lower())


@dataclass(frozen=True, slots=True)
class PublicVerification:
    """Everything the public verify page shows. No names, addresses, dates of birth or numbers
    that identify a person: only what is printed on the paper anyway and proves it was issued."""

    issue_number: str
    certificate_type: CertificateType
    issued_on: date
    municipality_name: str
    pages: int
    document_sha256: str
    reprint: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "issue_number": self.issue_number,
            "certificate_type": self.certificate_type.value,
            "certificate_label": self.certificate_type.label_ja,
            "issued_on": self.issued_on.isoformat(),
            "municipality": self.municipality_name,
            "pages": self.pages,
            "document_sha256": self.document_sha256,
            "reprint": self.reprint,
        }

    def matches(self, ref: VerificationRef) -> bool:
        """Whether a scanned QR belongs to this issued copy: same copy and the hash prefix agrees."""
        return parse_issue_number(self.issue_number).copy_key == ref.copy_key and hash_prefix_matches(
            self.document_sha256, ref.hash_prefix
        )
