"""A demo JPKI certificate authority for simulated My Number Cards (NOT J-LIS).

Shaped like the real hierarchy (design note mynumber-card.md §1 "Certificates / chain facts"):
two self-signed RSA-2048 roots, one for user authentication and one for digital signatures,
that issue end-entity certificates directly; the auth EE certificate carries no personal data
(`C=JP, CN=<opaque>`), the signing one carries the 4 attributes as otherName SANs; CRL
distribution points are directory names, as on the real certificates.

Everything lives in one folder:

    auth-ca/key.pem cert.pem crl.pem revoked.json     (利用者証明用 root)
    sign-ca/key.pem cert.pem crl.pem revoked.json     (署名用 root)
    issued/auth-<SERIAL>.pem, issued/sign-<SERIAL>.pem
    cards/<card id>/auth_key.pem sign_key.pem auth_cert.der sign_cert.der

RSA-2048 keys take 50–150 ms each to generate, so card keys are made on first use and cached.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "AUTH_ROOT_NAME",
    "SIGN_ROOT_NAME",
    "CaKind",
    "CardCredentials",
    "Holder",
    "JpkiDemoCa",
    "parse_serial",
]

_DEMO_OU = "Madoguchi demo (not J-LIS)"


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


AUTH_ROOT_NAME = _name(
    (NameOID.COUNTRY_NAME, "JP"),
    (NameOID.ORGANIZATION_NAME, "JPKI-DEMO"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for user authentication"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, _DEMO_OU),
)
SIGN_ROOT_NAME = _name(
    (NameOID.COUNTRY_NAME, "JP"),
    (NameOID.ORGANIZATION_NAME, "JPKI-DEMO"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, _DEMO_OU),
)
_ROOT_ALT_NAME = _name(
    (NameOID.COUNTRY_NAME, "JP"), (NameOID.ORGANIZATION_NAME, "公的個人認証サービス（デモ）")
)

# Signing certificates' subjectAltName otherName OIDs (myna-go jpki_ap.go).
OID_NAME = x509.ObjectIdentifier("1.2.392.200149.8.5.5.1")
OID_SEX = x509.ObjectIdentifier("1.2.392.200149.8.5.5.3")
OID_BIRTH = x509.ObjectIdentifier("1.2.392.200149.8.5.5.4")
OID_ADDRESS = x509.ObjectIdentifier("1.2.392.200149.8.5.5.5")

ROOT_YEARS = 10
EE_YEARS = 5
CRL_HOURS = 24


class CaKind(Enum):
    AUTH = "auth"  # 利用者証明用
    SIGN = "sign"  # 署名用


@dataclass(frozen=True, slots=True)
class Holder:
    """The 4 attributes printed in a signing certificate."""

    name: str
    address: str
    birth: date
    sex: str


@dataclass(frozen=True, slots=True)
class CardCredentials:
    auth_key: rsa.RSAPrivateKey
    auth_cert: bytes  # DER
    sign_key: rsa.RSAPrivateKey
    sign_cert: bytes  # DER


def parse_serial(serial: int | str) -> int:
    """A certificate serial from the registry's hex string (or an int)."""
    value = serial if isinstance(serial, int) else int(serial.strip().replace(":", ""), 16)
    if value <= 0 or value.bit_length() > 159:
        raise ValueError("certificate serial must be positive and at most 20 octets")
    return value


def _utf8_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) < 0x80:
        return bytes((0x0C, len(raw))) + raw
    if len(raw) <= 0xFF:
        return bytes((0x0C, 0x81, len(raw))) + raw
    return bytes((0x0C, 0x82, len(raw) >> 8, len(raw) & 0xFF)) + raw


def _add_years(day: datetime, years: int) -> datetime:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA key")
    return key


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _opaque_cn(kind: CaKind, serial: int) -> str:
    """An opaque subject CN like the real ones (no personal data)."""
    digest = hashlib.sha256(f"{kind.value}:{serial:X}".encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:21]


@dataclass(slots=True)
class _Root:
    kind: CaKind
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    folder: Path


class JpkiDemoCa:
    """Two demo roots (auth, sign), the certificates they issued and their CRLs."""

    def __init__(self, folder: Path, auth: _Root, sign: _Root) -> None:
        self.folder = folder
        self._roots = {CaKind.AUTH: auth, CaKind.SIGN: sign}
        self._lock = threading.RLock()

    # -- creation ------------------------------------------------------------------------------
    @classmethod
    def load_or_create(cls, folder: Path) -> JpkiDemoCa:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with _folder_lock(folder):
            auth = cls._load_or_create_root(folder / "auth-ca", CaKind.AUTH, AUTH_ROOT_NAME)
            sign = cls._load_or_create_root(folder / "sign-ca", CaKind.SIGN, SIGN_ROOT_NAME)
        ca = cls(folder, auth, sign)
        for kind in CaKind:
            if not (ca._roots[kind].folder / "crl.pem").exists():
                ca._write_crl(kind)
        return ca

    @staticmethod
    def _load_or_create_root(folder: Path, kind: CaKind, name: x509.Name) -> _Root:
        key_path, cert_path = folder / "key.pem", folder / "cert.pem"
        if key_path.exists() and cert_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            return _Root(kind, _load_key(key_path), cert, folder)
        key = _new_key()
        now = datetime.now(UTC).replace(microsecond=0)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(_add_years(now, ROOT_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(_ROOT_ALT_NAME)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_atomic(key_path, _key_pem(key), private=True)
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return _Root(kind, key, cert, folder)

    # -- roots -----------------------------------------------------------------------------------
    def root_certificate(self, kind: CaKind = CaKind.AUTH) -> x509.Certificate:
        return self._roots[kind].cert

    def root_der(self, kind: CaKind = CaKind.AUTH) -> bytes:
        return self._roots[kind].cert.public_bytes(serialization.Encoding.DER)

    def root_pem_path(self, kind: CaKind = CaKind.AUTH) -> Path:
        """The trust anchor to configure in a verifier for demo cards."""
        return self._roots[kind].folder / "cert.pem"

    # -- issuing ---------------------------------------------------------------------------------
    def _crl_dp(self, kind: CaKind) -> x509.CRLDistributionPoints:
        root_name = self._roots[kind].cert.subject
        dp_name = x509.Name(
            [*root_name, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CRL Distribution Points")]
        )
        point = x509.DistributionPoint(
            full_name=[x509.DirectoryName(dp_name)], relative_name=None, reasons=None, crl_issuer=None
        )
        return x509.CRLDistributionPoints([point])

    def _issue(
        self,
        kind: CaKind,
        serial: int | str,
        public_key: rsa.RSAPublicKey,
        not_before: datetime | None,
        extra: list[tuple[x509.ExtensionType, bool]],
    ) -> x509.Certificate:
        root = self._roots[kind]
        number = parse_serial(serial)
        start = (not_before or datetime.now(UTC)).replace(microsecond=0)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                _name((NameOID.COUNTRY_NAME, "JP"), (NameOID.COMMON_NAME, _opaque_cn(kind, number)))
            )
            .issuer_name(root.cert.subject)
            .public_key(public_key)
            .serial_number(number)
            .not_valid_before(start)
            .not_valid_after(min(_add_years(start, EE_YEARS), root.cert.not_valid_after_utc))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._crl_dp(kind), critical=False)
        )
        for extension, critical in extra:
            builder = builder.add_extension(extension, critical=critical)
        cert = builder.sign(root.key, hashes.SHA256())
        _write_atomic(
            self.folder / "issued" / f"{kind.value}-{number:X}.pem",
            cert.public_bytes(serialization.Encoding.PEM),
        )
        return cert

    def issue_auth_certificate(
        self, serial: int | str, public_key: rsa.RSAPublicKey, *, not_before: datetime | None = None
    ) -> x509.Certificate:
        """利用者証明用電子証明書: `C=JP, CN=<opaque>`, digitalSignature, 5 years."""
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        return self._issue(CaKind.AUTH, serial, public_key, not_before, [(usage, True)])

    def issue_sign_certificate(
        self,
        serial: int | str,
        public_key: rsa.RSAPublicKey,
        holder: Holder,
        *,
        not_before: datetime | None = None,
    ) -> x509.Certificate:
        """署名用電子証明書 with 氏名, 生年月日, 性別, 住所 as otherName SANs."""
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=True,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        birth = f"{holder.birth.year:04d}{holder.birth.month:02d}{holder.birth.day:02d}"
        san = x509.SubjectAlternativeName(
            [
                x509.OtherName(OID_NAME, _utf8_string(holder.name)),
                x509.OtherName(OID_SEX, _utf8_string(holder.sex)),
                x509.OtherName(OID_BIRTH, _utf8_string(birth)),
                x509.OtherName(OID_ADDRESS, _utf8_string(holder.address)),
            ]
        )
        return self._issue(CaKind.SIGN, serial, public_key, not_before, [(usage, True), (san, False)])

    def card_credentials(
        self,
        card_id: str,
        auth_serial: int | str,
        sign_serial: int | str,
        holder: Holder,
        *,
        not_before: datetime | None = None,
    ) -> CardCredentials:
        """Keys and certificates for one card, generated on first use and cached in cards/<card_id>/.

        A cached certificate is reissued if its serial no longer matches (e.g. a renewed card).
        """
        if not card_id or not all(c.isalnum() or c in "-_" for c in card_id):
            raise ValueError("card_id must be letters, digits, '-' or '_'")
        folder = self.folder / "cards" / card_id
        with self._lock, _folder_lock(self.folder):
            auth_key = self._cached_key(folder / "auth_key.pem")
            sign_key = self._cached_key(folder / "sign_key.pem")
            auth_cert = self._cached_cert(
                folder / "auth_cert.der",
                parse_serial(auth_serial),
                auth_key,
                lambda: self.issue_auth_certificate(
                    auth_serial, auth_key.public_key(), not_before=not_before
                ),
            )
            sign_cert = self._cached_cert(
                folder / "sign_cert.der",
                parse_serial(sign_serial),
                sign_key,
                lambda: self.issue_sign_certificate(
                    sign_serial, sign_key.public_key(), holder, not_before=not_before
                ),
            )
        return CardCredentials(auth_key, auth_cert, sign_key, sign_cert)

    @staticmethod
    def _cached_key(path: Path) -> rsa.RSAPrivateKey:
        if path.exists():
            return _load_key(path)
        key = _new_key()
        _write_atomic(path, _key_pem(key), private=True)
        return key

    @staticmethod
    def _cached_cert(
        path: Path, serial: int, key: rsa.RSAPrivateKey, issue: Callable[[], x509.Certificate]
    ) -> bytes:
        if path.exists():
            der = path.read_bytes()
            cert = x509.load_der_x509_certificate(der)
            if cert.serial_number == serial and cert.public_key() == key.public_key():
                return der
        der = issue().public_bytes(serialization.Encoding.DER)
        _write_atomic(path, der)
        return der

    # -- revocation ------------------------------------------------------------------------------
    def _revoked_path(self, kind: CaKind) -> Path:
        return self._roots[kind].folder / "revoked.json"

    def _revoked(self, kind: CaKind) -> dict[int, datetime]:
        path = self._revoked_path(kind)
        if not path.exists():
            return {}
        entries = json.loads(path.read_text(encoding="utf-8"))
        return {int(e["serial"], 16): datetime.fromisoformat(e["revoked_at"]) for e in entries}

    def revoked_serials(self, kind: CaKind = CaKind.AUTH) -> set[int]:
        with self._lock:
            return set(self._revoked(kind))

    def is_revoked(self, serial: int | str, kind: CaKind = CaKind.AUTH) -> bool:
        return parse_serial(serial) in self.revoked_serials(kind)

    def revoke(self, serial: int | str, kind: CaKind = CaKind.AUTH, *, at: datetime | None = None) -> None:
        """Add a serial to the CRL (idempotent) and rewrite crl.pem."""
        self._set_revoked(kind, parse_serial(serial), at or datetime.now(UTC).replace(microsecond=0))

    def unrevoke(self, serial: int | str, kind: CaKind = CaKind.AUTH) -> None:
        """Demo only: take a serial off the CRL again."""
        self._set_revoked(kind, parse_serial(serial), None)

    def _set_revoked(self, kind: CaKind, serial: int, at: datetime | None) -> None:
        with self._lock, _folder_lock(self.folder):
            revoked = self._revoked(kind)
            if at is None:
                revoked.pop(serial, None)
            else:
                revoked.setdefault(serial, at)
            entries = [
                {"serial": f"{number:X}", "revoked_at": when.isoformat()}
                for number, when in sorted(revoked.items())
            ]
            _write_atomic(self._revoked_path(kind), json.dumps(entries, indent=1).encode("utf-8"))
            self._write_crl(kind, revoked)

    def crl(self, kind: CaKind = CaKind.AUTH) -> x509.CertificateRevocationList:
        """A freshly signed CRL (valid 24 h) listing the revoked serials."""
        with self._lock:
            return self._build_crl(kind, self._revoked(kind))

    def crl_pem(self, kind: CaKind = CaKind.AUTH) -> str:
        return self.crl(kind).public_bytes(serialization.Encoding.PEM).decode("ascii")

    def crl_pem_path(self, kind: CaKind = CaKind.AUTH) -> Path:
        return self._roots[kind].folder / "crl.pem"

    def _build_crl(self, kind: CaKind, revoked: dict[int, datetime]) -> x509.CertificateRevocationList:
        root = self._roots[kind]
        now = datetime.now(UTC).replace(microsecond=0)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(root.cert.subject)
            .last_update(now)
            .next_update(now + timedelta(hours=CRL_HOURS))
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False
            )
        )
        for serial, when in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        return builder.sign(root.key, hashes.SHA256())

    def _write_crl(self, kind: CaKind, revoked: dict[int, datetime] | None = None) -> None:
        crl = self._build_crl(kind, self._revoked(kind) if revoked is None else revoked)
        _write_atomic(self.crl_pem_path(kind), crl.public_bytes(serialization.Encoding.PEM))


if sys.platform == "win32":  # pragma: no cover

    @contextlib.contextmanager
    def _folder_lock(folder: Path) -> Iterator[None]:
        yield

else:
    import fcntl

    @contextlib.contextmanager
    def _folder_lock(folder: Path) -> Iterator[None]:
        """Serialise creation across processes (tests, the console and a bridge may share a folder)."""
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
