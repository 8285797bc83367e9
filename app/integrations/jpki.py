"""Server-side check of a kiosk card authentication with the 利用者証明用電子証明書 (JPKI).

The kiosk flow (design note mynumber-card.md §1, §4):

1. the server issues a fresh nonce (`issue_nonce`) bound to the kiosk, single use, 2 minutes;
2. the device bridge has the card sign it with the user-authentication key after the 4-digit
   PIN (`MyNumberCard.sign_with_auth_key`: sha256WithRSAEncryption, PKCS#1 v1.5) and reads the
   authentication certificate (EF 000A, no PIN);
3. the server takes the nonce back (`consume_nonce`) and calls `verify_card_authentication`,
   which checks, failing closed on anything it cannot establish:
   - the certificate parses and holds an RSA key of 2048 bits or more;
   - it was issued *directly* by one of the pinned roots (`TrustStore`): J-LIS issues end-entity
     certificates straight from its roots, and a card's own CA file proves nothing, so the
     issuer signature is verified with a pinned root's key. Roots must be CA certificates with
     keyCertSign and be valid now. Several roots may share one DN (J-LIS has three generations
     of "JPKI for user authentication"); the one whose key verifies is the issuer;
   - it is valid now, is not a CA, allows digitalSignature, has no unknown critical extension;
   - the signature over the nonce verifies with its key;
   - it is not revoked, by serial number, according to a `RevocationChecker`.

Revocation is pluggable because J-LIS gives revocation information only to registered
verifiers over closed networks:
- `CrlRevocationChecker`: CRL files (PEM or DER) fetched by some other job; each CRL's signature
  is verified with a pinned root and a CRL past its nextUpdate is refused, so a stale or
  unverifiable CRL stops authentication instead of letting revoked cards through;
- `SerialListRevocationChecker`: a text file of revoked serials, for municipalities that receive
  lists (e.g. from a platform); optionally refused when older than `max_age`;
- OCSP (デジタル庁「地方認証プラットフォーム」 answers by OCSP only) is a future implementation of
  the same protocol: build the request with `cryptography.x509.ocsp.OCSPRequestBuilder`
  (certificate + issuer), POST it to the configured responder over LGWAN, verify the response
  signature against the issuer or a delegated responder certificate, check thisUpdate/nextUpdate,
  map GOOD → False, REVOKED → True, UNKNOWN or any error → RevocationUnavailable.

Nonces: `new_nonce()` gives 32 random bytes; a `NonceStore` keeps issued nonces for 2 minutes and
hands each back once (`MemoryNonceStore` for one process, `RedisNonceStore` for several).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtensionOID

__all__ = [
    "MIN_RSA_BITS",
    "NONCE_BYTES",
    "NONCE_TTL_SECONDS",
    "CardAuthError",
    "CardAuthErrorCode",
    "CrlRevocationChecker",
    "MemoryNonceStore",
    "NonceStore",
    "RedisNonceStore",
    "RevocationChecker",
    "RevocationUnavailable",
    "SerialListRevocationChecker",
    "TrustStore",
    "TrustedCertificate",
    "VerifiedCard",
    "check_certificate",
    "consume_nonce",
    "format_serial",
    "issue_nonce",
    "new_nonce",
    "normalize_serial",
    "verify_card_authentication",
]

NONCE_BYTES = 32
NONCE_TTL_SECONDS = 120
MIN_RSA_BITS = 2048
# How far a CRL's thisUpdate may lie in the future (clock skew between the CA and us).
CRL_CLOCK_SKEW = timedelta(minutes=5)


# -- serial numbers --------------------------------------------------------------------------------
def format_serial(serial: int) -> str:
    """The canonical text form of a certificate serial: upper-case hex, no leading zeros."""
    if serial <= 0:
        raise ValueError("certificate serials are positive")
    return f"{serial:X}"


def normalize_serial(text: str | int) -> str:
    """Canonical form of a serial written as hex in any case, with leading zeros, colons,
    spaces or a 0x prefix ("00:0a:BC" → "ABC"). Raises ValueError for anything else."""
    if isinstance(text, int):
        return format_serial(text)
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned or any(c not in "0123456789abcdefABCDEF" for c in cleaned):
        raise ValueError(f"not a hexadecimal certificate serial: {text!r}")
    return format_serial(int(cleaned, 16))


# -- errors ----------------------------------------------------------------------------------------
class CardAuthErrorCode(StrEnum):
    MALFORMED_CERTIFICATE = "malformed_certificate"
    UNSUPPORTED_KEY = "unsupported_key"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_CERTIFICATE = "wrong_certificate"  # a CA or a certificate not meant for authentication
    BAD_SIGNATURE = "bad_signature"
    REVOKED = "revoked"
    REVOCATION_UNAVAILABLE = "revocation_unavailable"
    NONCE_INVALID = "nonce_invalid"  # unknown, used, expired or issued to another kiosk


_NOT_CONFIRMED = (
    "カードを確認できませんでした。窓口へお越しください。",
    "カードを 確認（かくにん）できませんでした。窓口（まどぐち）に 来て（きて）ください。",
    "We could not confirm your card. Please come to the counter.",
)
_RESIDENT_MESSAGES: dict[CardAuthErrorCode, tuple[str, str, str]] = {
    CardAuthErrorCode.MALFORMED_CERTIFICATE: _NOT_CONFIRMED,
    CardAuthErrorCode.UNSUPPORTED_KEY: _NOT_CONFIRMED,
    CardAuthErrorCode.UNTRUSTED_ISSUER: _NOT_CONFIRMED,
    CardAuthErrorCode.WRONG_CERTIFICATE: _NOT_CONFIRMED,
    CardAuthErrorCode.BAD_SIGNATURE: _NOT_CONFIRMED,
    CardAuthErrorCode.NOT_YET_VALID: (
        "カードの電子証明書がまだ使えません。窓口へお越しください。",
        "カードの 電子証明書（でんししょうめいしょ）が まだ 使えません（つかえません）。"
        "窓口（まどぐち）に 来て（きて）ください。",
        "The certificate on your card is not valid yet. Please come to the counter.",
    ),
    CardAuthErrorCode.EXPIRED: (
        "カードの電子証明書の有効期限が切れています。窓口へお越しください。",
        "カードの 電子証明書（でんししょうめいしょ）の 期限（きげん）が 切れて（きれて）います。"
        "窓口（まどぐち）に 来て（きて）ください。",
        "The certificate on your card has expired. Please come to the counter.",
    ),
    CardAuthErrorCode.REVOKED: (
        "カードの電子証明書が失効しているため、ご利用になれません。窓口へお越しください。",
        "カードの 電子証明書（でんししょうめいしょ）が 使えなく（つかえなく）なっています。"
        "窓口（まどぐち）に 来て（きて）ください。",
        "The certificate on your card has been revoked. Please come to the counter.",
    ),
    CardAuthErrorCode.REVOCATION_UNAVAILABLE: (
        "ただいまカードの確認ができません。しばらくしてからもう一度お試しいただくか、窓口へお越しください。",
        "いま カードを 確認（かくにん）できません。あとで もう一度（いちど） ためすか、"
        "窓口（まどぐち）に 来て（きて）ください。",
        "Cards cannot be checked right now. Please try again later or come to the counter.",
    ),
    CardAuthErrorCode.NONCE_INVALID: (
        "時間が過ぎたため、確認をやり直します。もう一度カードを置いてください。",
        "時間（じかん）が 過ぎました（すぎました）。もう一度（いちど） カードを 置いて（おいて）ください。",
        "The time ran out. Please place your card again.",
    ),
}


class CardAuthError(Exception):
    """A card authentication that must not be accepted.

    `code` and `detail` are for logs and staff (no PINs, no certificate contents beyond the
    serial); the `message_*` attributes are what the kiosk shows the resident.
    """

    def __init__(self, code: CardAuthErrorCode, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        self.message_ja, self.message_easy_ja, self.message_en = _RESIDENT_MESSAGES[code]
        super().__init__(f"{code.value}: {detail}" if detail else code.value)


class RevocationUnavailable(Exception):
    """A revocation checker cannot tell whether a certificate is revoked (fail closed)."""


# -- trust -----------------------------------------------------------------------------------------
def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be timezone-aware")
    return now.astimezone(UTC)


def _is_ca_with_cert_sign(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca and usage.key_cert_sign


def _pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks: list[bytes] = []
    position = 0
    while (start := data.find(begin, position)) != -1:
        stop = data.find(end, start)
        if stop == -1:
            raise ValueError(f"unterminated PEM block {label.decode()}")
        blocks.append(data[start : stop + len(end)] + b"\n")
        position = stop + len(end)
    return blocks


class TrustStore:
    """Pinned roots that may issue authentication certificates directly.

    Production: the J-LIS 利用者証明用 roots the municipality installs (authca02, authca03 …);
    demo: the demo CA's auth-ca/cert.pem. Every root must be a CA certificate with keyCertSign.
    """

    def __init__(self, roots: Iterable[x509.Certificate]) -> None:
        self._roots = tuple(roots)
        if not self._roots:
            raise ValueError("a trust store needs at least one root certificate")
        for root in self._roots:
            if not _is_ca_with_cert_sign(root):
                raise ValueError(f"{root.subject.rfc4514_string()} is not a CA certificate with keyCertSign")

    @classmethod
    def from_pem_files(cls, paths: Iterable[str | Path]) -> TrustStore:
        """Roots from PEM files; a file may hold several certificates."""
        roots: list[x509.Certificate] = []
        for path in paths:
            data = Path(path).read_bytes()
            found = x509.load_pem_x509_certificates(data)
            if not found:
                raise ValueError(f"no certificate in {path}")
            roots.extend(found)
        return cls(roots)

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return self._roots

    def issuer_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        """The pinned root whose name matches the certificate's issuer and whose key verifies
        the certificate's signature; None when there is none."""
        for root in self._roots:
            if root.subject != certificate.issuer:
                continue
            try:
                certificate.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return root
        return None

    def crl_issuer_of(self, crl: x509.CertificateRevocationList) -> x509.Certificate | None:
        """The pinned root that signed this CRL, or None."""
        for root in self._roots:
            if root.subject != crl.issuer:
                continue
            key = root.public_key()
            if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                continue
            try:
                if crl.is_signature_valid(key):
                    return root
            except (TypeError, UnsupportedAlgorithm):
                continue
        return None


# -- revocation ------------------------------------------------------------------------------------
class RevocationChecker(Protocol):
    def is_revoked(self, certificate: x509.Certificate, issuer: x509.Certificate, *, now: datetime) -> bool:
        """True if revoked, False if known not to be; raise RevocationUnavailable when the
        answer cannot be established (missing, stale or unverifiable data, network errors)."""
        ...


@dataclass(frozen=True, slots=True)
class _FileStamp:
    """Identifies one version of a file; replacing it (a new inode) or rewriting it changes it."""

    inode: int
    mtime_ns: int
    ctime_ns: int
    size: int

    @classmethod
    def of(cls, path: Path) -> _FileStamp:
        stat = path.stat()
        return cls(stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)


_ALLOWED_CRL_EXTENSIONS = {
    ExtensionOID.CRL_NUMBER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.ISSUER_ALTERNATIVE_NAME,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ExtensionOID.ISSUING_DISTRIBUTION_POINT,
}


def _check_crl_profile(crl: x509.CertificateRevocationList, path: Path) -> None:
    """Only complete, direct CRLs that cover end-entity certificates for all reasons."""
    for extension in crl.extensions:
        if extension.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            raise RevocationUnavailable(f"{path}: delta CRLs are not supported")
        if extension.critical and extension.oid not in _ALLOWED_CRL_EXTENSIONS:
            raise RevocationUnavailable(f"{path}: unsupported critical CRL extension {extension.oid}")
        if isinstance(extension.value, x509.IssuingDistributionPoint):
            scope = extension.value
            if (
                scope.only_contains_ca_certs
                or scope.only_contains_attribute_certs
                or scope.only_some_reasons
                or scope.indirect_crl
            ):
                raise RevocationUnavailable(f"{path}: partial or indirect CRLs are not supported")


@dataclass(frozen=True, slots=True)
class _LoadedCrl:
    crl: x509.CertificateRevocationList
    issuer: x509.Certificate
    path: Path


class CrlRevocationChecker:
    """Looks serials up in CRL files (PEM, several per file allowed, or DER), reloaded when a
    file changes. Every CRL must be signed by a pinned root; the freshest CRL from the
    certificate's issuer must not be past its nextUpdate (plus `grace`). Anything else —
    a missing or unreadable file, a bad signature, no CRL for the issuer, a stale CRL — raises
    RevocationUnavailable, which verification turns into a refusal."""

    def __init__(
        self,
        crl_pem_paths: Iterable[str | Path],
        trust: TrustStore,
        *,
        grace: timedelta = timedelta(0),
    ) -> None:
        self._paths = tuple(Path(p) for p in crl_pem_paths)
        if not self._paths:
            raise ValueError("configure at least one CRL file")
        self._trust = trust
        self._grace = grace
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[_FileStamp, list[_LoadedCrl]]] = {}

    def _load(self, path: Path) -> list[_LoadedCrl]:
        try:
            stamp = _FileStamp.of(path)
        except OSError as error:
            raise RevocationUnavailable(f"CRL file {path} cannot be read: {error.strerror}") from None
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            data = path.read_bytes()
            if b"-----BEGIN" in data:
                blocks = _pem_blocks(data, b"X509 CRL")
                if not blocks:
                    raise ValueError("no X509 CRL block")
                crls = [x509.load_pem_x509_crl(block) for block in blocks]
            else:
                crls = [x509.load_der_x509_crl(data)]
        except (OSError, ValueError) as error:
            raise RevocationUnavailable(f"CRL file {path} cannot be parsed: {error}") from None
        loaded: list[_LoadedCrl] = []
        for crl in crls:
            issuer = self._trust.crl_issuer_of(crl)
            if issuer is None:
                raise RevocationUnavailable(
                    f"CRL in {path} ({crl.issuer.rfc4514_string()}) is not signed by a trusted root"
                )
            _check_crl_profile(crl, path)
            loaded.append(_LoadedCrl(crl, issuer, path))
        self._cache[path] = (stamp, loaded)
        return loaded

    def is_revoked(self, certificate: x509.Certificate, issuer: x509.Certificate, *, now: datetime) -> bool:
        now = _aware(now)
        with self._lock:
            loaded = [item for path in self._paths for item in self._load(path)]
        mine = [item for item in loaded if item.issuer == issuer]
        if not mine:
            raise RevocationUnavailable(f"no CRL from {issuer.subject.rfc4514_string()} is configured")
        latest = max(mine, key=lambda item: item.crl.last_update_utc)
        crl = latest.crl
        if crl.last_update_utc > now + CRL_CLOCK_SKEW:
            raise RevocationUnavailable(
                f"CRL {latest.path} was issued in the future ({crl.last_update_utc.isoformat()}): check the clock"
            )
        next_update = crl.next_update_utc
        if next_update is None:
            raise RevocationUnavailable(f"CRL {latest.path} has no nextUpdate")
        if now > next_update + self._grace:
            raise RevocationUnavailable(
                f"CRL {latest.path} is stale: its nextUpdate was {next_update.isoformat()}; fetch a new CRL"
            )
        return crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None


class SerialListRevocationChecker:
    """Revoked serials from a text file: one hex serial per line (any case, leading zeros,
    colons allowed), blank lines and `#` comments ignored; reloaded when the file changes.

    The list is not signed: protect the file. With `max_age`, a file last modified longer ago
    than that is refused as stale. A missing or malformed file raises RevocationUnavailable.
    Serials are matched whatever the issuer (serials of different J-LIS root generations do
    not collide in practice; a list per issuer needs one checker per issuer).
    """

    def __init__(self, path: str | Path, *, max_age: timedelta | None = None) -> None:
        self._path = Path(path)
        self._max_age = max_age
        self._lock = threading.Lock()
        self._cache: tuple[_FileStamp, frozenset[int]] | None = None

    def _serials(self, now: datetime) -> frozenset[int]:
        try:
            stamp = _FileStamp.of(self._path)
        except OSError as error:
            raise RevocationUnavailable(
                f"revoked-serial list {self._path} cannot be read: {error.strerror}"
            ) from None
        if self._max_age is not None:
            modified = datetime.fromtimestamp(stamp.mtime_ns / 1e9, UTC)
            if now - modified > self._max_age:
                raise RevocationUnavailable(
                    f"revoked-serial list {self._path} is stale (last updated {modified.isoformat()})"
                )
        with self._lock:
            if self._cache is not None and self._cache[0] == stamp:
                return self._cache[1]
            serials: set[int] = set()
            try:
                lines = self._path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise RevocationUnavailable(f"revoked-serial list {self._path}: {error}") from None
            for number, line in enumerate(lines, start=1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                try:
                    serials.add(int(normalize_serial(text), 16))
                except ValueError:
                    raise RevocationUnavailable(
                        f"revoked-serial list {self._path}, line {number}: not a hex serial"
                    ) from None
            frozen = frozenset(serials)
            self._cache = (stamp, frozen)
            return frozen

    def is_revoked(self, certificate: x509.Certificate, issuer: x509.Certificate, *, now: datetime) -> bool:
        return certificate.serial_number in self._serials(_aware(now))


# -- verification ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VerifiedCard:
    """A card whose holder proved possession of the authentication key just now."""

    serial_hex: str  # canonical: upper-case hex without leading zeros (see normalize_serial)
    subject: str  # RFC 4514, e.g. "CN=…,C=JP" (opaque, no personal data)
    not_after: datetime  # UTC
    issuer: str = ""  # RFC 4514 of the root that issued it

    @property
    def serial(self) -> int:
        return int(self.serial_hex, 16)


def _check_profile(cert: x509.Certificate) -> None:
    for extension in cert.extensions:
        if extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            raise CardAuthError(
                CardAuthErrorCode.WRONG_CERTIFICATE,
                f"unknown critical extension {extension.oid.dotted_string}",
            )
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CardAuthError(CardAuthErrorCode.WRONG_CERTIFICATE, "a CA certificate was presented")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise CardAuthError(CardAuthErrorCode.WRONG_CERTIFICATE, "key usage lacks digitalSignature")


@dataclass(frozen=True, slots=True)
class TrustedCertificate:
    """A 利用者証明用 certificate that is trusted, current and not revoked — read from a card
    without proof that the card holds its key (no signed nonce)."""

    serial_hex: str  # canonical: upper-case hex without leading zeros (see normalize_serial)
    subject: str
    not_after: datetime  # UTC
    issuer: str = ""


def _trusted(
    certificate_der: bytes, *, trust: TrustStore, now: datetime
) -> tuple[x509.Certificate, rsa.RSAPublicKey, x509.Certificate, str]:
    """Parse and check a certificate (key, pinned issuer, validity, profile): the certificate,
    its key, the root that issued it and its serial text. Raises CardAuthError."""
    try:
        cert = x509.load_der_x509_certificate(certificate_der)
        _ = cert.extensions  # parsed lazily: make malformed extensions fail here
    except ValueError as error:
        raise CardAuthError(CardAuthErrorCode.MALFORMED_CERTIFICATE, str(error)) from None
    if cert.serial_number <= 0:
        raise CardAuthError(CardAuthErrorCode.MALFORMED_CERTIFICATE, "serial number is not positive")
    serial_text = format_serial(cert.serial_number)

    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as error:
        raise CardAuthError(CardAuthErrorCode.UNSUPPORTED_KEY, str(error)) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise CardAuthError(CardAuthErrorCode.UNSUPPORTED_KEY, f"{type(key).__name__} keys are not accepted")
    if key.key_size < MIN_RSA_BITS:
        raise CardAuthError(CardAuthErrorCode.UNSUPPORTED_KEY, f"RSA-{key.key_size} is too short")

    issuer = trust.issuer_of(cert)
    if issuer is None:
        raise CardAuthError(
            CardAuthErrorCode.UNTRUSTED_ISSUER,
            f"serial {serial_text}: not issued by a pinned root ({cert.issuer.rfc4514_string()})",
        )
    if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
        raise CardAuthError(
            CardAuthErrorCode.UNTRUSTED_ISSUER, f"serial {serial_text}: the issuing root is not valid now"
        )

    if now < cert.not_valid_before_utc:
        raise CardAuthError(
            CardAuthErrorCode.NOT_YET_VALID,
            f"serial {serial_text}: valid from {cert.not_valid_before_utc.isoformat()}",
        )
    if now > cert.not_valid_after_utc:
        raise CardAuthError(
            CardAuthErrorCode.EXPIRED, f"serial {serial_text}: expired {cert.not_valid_after_utc.isoformat()}"
        )
    _check_profile(cert)
    return cert, key, issuer, serial_text


def _check_revocation(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    serial_text: str,
    revocation: RevocationChecker,
    now: datetime,
) -> None:
    try:
        revoked = revocation.is_revoked(cert, issuer, now=now)
    except RevocationUnavailable as error:
        raise CardAuthError(CardAuthErrorCode.REVOCATION_UNAVAILABLE, str(error)) from None
    if revoked:
        raise CardAuthError(CardAuthErrorCode.REVOKED, f"serial {serial_text} is revoked")


def check_certificate(
    certificate_der: bytes, *, trust: TrustStore, revocation: RevocationChecker, now: datetime
) -> TrustedCertificate:
    """Every check of `verify_card_authentication` except the signature over a nonce: the
    certificate parses, was issued directly by a pinned root, is current, has the profile of an
    authentication certificate and is not revoked. Raises CardAuthError.

    It proves nothing about who presented it (a certificate is public data): use it only where
    something else bound the card to the person, e.g. a PIN the card itself verified."""
    now = _aware(now)
    cert, _, issuer, serial_text = _trusted(certificate_der, trust=trust, now=now)
    _check_revocation(cert, issuer, serial_text, revocation, now)
    return TrustedCertificate(
        serial_hex=serial_text,
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        issuer=issuer.subject.rfc4514_string(),
    )


def verify_card_authentication(
    nonce: bytes,
    signature: bytes,
    certificate_der: bytes,
    *,
    trust: TrustStore,
    revocation: RevocationChecker,
    now: datetime,
) -> VerifiedCard:
    """Check that `signature` is the card's sha256WithRSA (PKCS#1 v1.5) signature over `nonce`
    made with the key of `certificate_der`, and that the certificate is trusted, current and
    not revoked. Raises CardAuthError; the caller must already have consumed the nonce."""
    now = _aware(now)
    if not nonce:
        raise CardAuthError(CardAuthErrorCode.NONCE_INVALID, "empty nonce")
    cert, key, issuer, serial_text = _trusted(certificate_der, trust=trust, now=now)

    try:
        key.verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise CardAuthError(
            CardAuthErrorCode.BAD_SIGNATURE, f"serial {serial_text}: signature does not verify"
        ) from None

    _check_revocation(cert, issuer, serial_text, revocation, now)

    return VerifiedCard(
        serial_hex=serial_text,
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        issuer=issuer.subject.rfc4514_string(),
    )


# -- nonces ----------------------------------------------------------------------------------------
def new_nonce() -> bytes:
    """32 random bytes for the card to sign."""
    return secrets.token_bytes(NONCE_BYTES)


class NonceStore(Protocol):
    """Issued nonces, each usable once within its lifetime.

    `context` binds a nonce to whoever asked for it (the kiosk device or session id): `take`
    returns it so the caller can check that the answer comes from the same kiosk.
    """

    def put(self, nonce: bytes, context: str, *, ttl_seconds: int = NONCE_TTL_SECONDS) -> None:
        """Remember a nonce; raises ValueError if it is already there."""
        ...

    def take(self, nonce: bytes) -> str | None:
        """The nonce's context, removing the nonce; None if unknown, used or expired."""
        ...


def issue_nonce(store: NonceStore, context: str, *, ttl_seconds: int = NONCE_TTL_SECONDS) -> bytes:
    """A fresh nonce, remembered in `store` for `context`."""
    nonce = new_nonce()
    store.put(nonce, context, ttl_seconds=ttl_seconds)
    return nonce


def consume_nonce(store: NonceStore, nonce: bytes, context: str) -> None:
    """Use up a nonce; raises CardAuthError(NONCE_INVALID) unless it was issued to `context`,
    has not been used and has not expired. A nonce presented by the wrong kiosk is burnt too."""
    issued_to = store.take(nonce)
    if issued_to is None:
        raise CardAuthError(CardAuthErrorCode.NONCE_INVALID, "unknown, used or expired nonce")
    if not secrets.compare_digest(issued_to.encode(), context.encode()):
        raise CardAuthError(CardAuthErrorCode.NONCE_INVALID, "nonce issued to another kiosk")


class MemoryNonceStore:
    """Nonces in this process (one web worker, tests). Thread-safe; at most `max_entries`
    live nonces, the oldest dropped first."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[str, float]] = {}

    def _purge(self, now: float) -> None:
        expired = [nonce for nonce, (_, expires) in self._entries.items() if expires <= now]
        for nonce in expired:
            del self._entries[nonce]

    def put(self, nonce: bytes, context: str, *, ttl_seconds: int = NONCE_TTL_SECONDS) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        with self._lock:
            now = self._clock()
            self._purge(now)
            if nonce in self._entries:
                raise ValueError("nonce already issued")
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[bytes(nonce)] = (context, now + ttl_seconds)

    def take(self, nonce: bytes) -> str | None:
        with self._lock:
            entry = self._entries.pop(bytes(nonce), None)
            if entry is None or entry[1] <= self._clock():
                return None
            return entry[0]

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._entries)


class _RedisLike(Protocol):
    def set(self, name: str, value: bytes, *, ex: int, nx: bool) -> Any: ...
    def getdel(self, name: str) -> Any: ...


class RedisNonceStore:
    """Nonces shared by several web workers: SET key NX EX ttl to issue, GETDEL to take (atomic,
    so a nonce is handed back once even under races). Needs Redis 6.2 or later."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        client: _RedisLike | None = None,
        prefix: str = "madoguchi:jpki-nonce:",
    ) -> None:
        if client is None:
            if not redis_url:
                raise ValueError("give a redis_url or a client")
            import redis

            client = redis.Redis.from_url(redis_url)
        self._client = client
        self._prefix = prefix

    def _key(self, nonce: bytes) -> str:
        return self._prefix + nonce.hex()

    def put(self, nonce: bytes, context: str, *, ttl_seconds: int = NONCE_TTL_SECONDS) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        if not self._client.set(self._key(nonce), context.encode("utf-8"), ex=ttl_seconds, nx=True):
            raise ValueError("nonce already issued")

    def take(self, nonce: bytes) -> str | None:
        value = self._client.getdel(self._key(nonce))
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
