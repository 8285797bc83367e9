"""Server-side verification of a kiosk card authentication against the demo JPKI CA:
signature over the nonce, pinned roots, validity, revocation (CRL, serial list), nonces."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from app.integrations.jpki import (
    NONCE_BYTES,
    NONCE_TTL_SECONDS,
    CardAuthError,
    CardAuthErrorCode,
    CrlRevocationChecker,
    MemoryNonceStore,
    RedisNonceStore,
    RevocationUnavailable,
    SerialListRevocationChecker,
    TrustStore,
    VerifiedCard,
    consume_nonce,
    format_serial,
    issue_nonce,
    new_nonce,
    normalize_serial,
    verify_card_authentication,
)
from device_bridge.drivers.mynumber import MyNumberCard
from device_bridge.simulators.jpki_ca import AUTH_ROOT_NAME, CaKind, Holder, JpkiDemoCa
from device_bridge.simulators.mynumber_card import CardProfile, SimulatedMyNumberCard

HOLDER = Holder("山田　太郎", "東京都千代田区霞が関１－２－３", date(1980, 2, 17), "1")
REDIS_URL = os.environ.get("MADOGUCHI_TEST_REDIS_URL", "")


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> JpkiDemoCa:
    return JpkiDemoCa.load_or_create(tmp_path_factory.mktemp("jpki-ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> JpkiDemoCa:
    """Another CA with the very same DN as `ca` but its own key (like a forged root)."""
    return JpkiDemoCa.load_or_create(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(scope="module")
def card_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def trust(ca: JpkiDemoCa) -> TrustStore:
    return TrustStore.from_pem_files([ca.root_pem_path(CaKind.AUTH)])


@pytest.fixture
def crl_checker(ca: JpkiDemoCa, trust: TrustStore) -> CrlRevocationChecker:
    return CrlRevocationChecker([ca.crl_pem_path(CaKind.AUTH)], trust)


class NeverRevoked:
    def is_revoked(self, certificate: x509.Certificate, issuer: x509.Certificate, *, now: datetime) -> bool:
        return False


_serials = iter(range(0x1000, 0x100000))


def next_serial() -> str:
    """A fresh serial per use, written like the registry does (16 hex digits, leading zeros)."""
    return f"{next(_serials):016X}"


def issue(ca: JpkiDemoCa, key: rsa.RSAPrivateKey, serial: str | None = None, **kwargs: object) -> bytes:
    cert = ca.issue_auth_certificate(serial or next_serial(), key.public_key(), **kwargs)  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.DER)


def sign(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def now() -> datetime:
    return datetime.now(UTC)


def root_key(ca: JpkiDemoCa) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((ca.folder / "auth-ca" / "key.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def build_cert(
    issuer_key: rsa.RSAPrivateKey,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    *,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    ca: bool = False,
    digital_signature: bool = True,
    extra: x509.ExtensionType | None = None,
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "TEST"),
                ]
            )
        )
        .issuer_name(AUTH_ROOT_NAME)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=not digital_signature,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def error_of(excinfo: pytest.ExceptionInfo[CardAuthError]) -> CardAuthErrorCode:
    return excinfo.value.code


# -- the happy path --------------------------------------------------------------------------------
def test_valid_signature_passes(ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey) -> None:
    serial = next_serial()
    der = issue(ca, card_key, serial)
    nonce = new_nonce()
    verified = verify_card_authentication(
        nonce, sign(card_key, nonce), der, trust=trust, revocation=NeverRevoked(), now=now()
    )
    assert isinstance(verified, VerifiedCard)
    assert verified.serial_hex == serial.lstrip("0")
    assert verified.serial == int(serial, 16)
    assert verified.subject.startswith("CN=") and verified.subject.endswith(",C=JP")
    cert = x509.load_der_x509_certificate(der)
    assert verified.not_after == cert.not_valid_after_utc
    assert verified.issuer == AUTH_ROOT_NAME.rfc4514_string()


def test_valid_signature_passes_with_the_crl(
    ca: JpkiDemoCa, trust: TrustStore, crl_checker: CrlRevocationChecker, card_key: rsa.RSAPrivateKey
) -> None:
    der = issue(ca, card_key)
    nonce = new_nonce()
    verify_card_authentication(
        nonce, sign(card_key, nonce), der, trust=trust, revocation=crl_checker, now=now()
    )


class _Transport:
    def __init__(self, card: SimulatedMyNumberCard) -> None:
        self.card = card

    def transmit(self, apdu: bytes | bytearray) -> bytes:
        return self.card.execute(bytes(apdu))


def test_end_to_end_with_the_simulated_card_and_the_driver(
    ca: JpkiDemoCa, trust: TrustStore, crl_checker: CrlRevocationChecker, tmp_path: Path
) -> None:
    serial = next_serial()
    profile = CardProfile.issued(ca, "E2E1", HOLDER, serial, next_serial())
    card = SimulatedMyNumberCard(profile, tmp_path / "state.json")
    card.power_on()
    reader = MyNumberCard(_Transport(card))
    store = MemoryNonceStore()

    nonce = issue_nonce(store, "kiosk-1")  # 1. the server issues a nonce
    certificate = reader.read_auth_certificate()  # 2. the bridge reads the certificate …
    reader.verify_auth_pin("1234")  # … checks the PIN …
    signature = reader.sign_with_auth_key(nonce)  # … and has the card sign the nonce
    consume_nonce(store, nonce, "kiosk-1")  # 3. the server takes the nonce back
    verified = verify_card_authentication(  # 4. and verifies
        nonce, signature, certificate, trust=trust, revocation=crl_checker, now=now()
    )
    assert verified.serial_hex == normalize_serial(serial)


# -- signature -------------------------------------------------------------------------------------
def test_tampered_nonce_fails(ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey) -> None:
    der = issue(ca, card_key)
    nonce = new_nonce()
    signature = sign(card_key, nonce)
    tampered = bytes([nonce[0] ^ 1]) + nonce[1:]
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            tampered, signature, der, trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.BAD_SIGNATURE
    assert excinfo.value.message_ja.endswith("窓口へお越しください。")


def test_tampered_or_truncated_signature_fails(
    ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey
) -> None:
    der = issue(ca, card_key)
    nonce = new_nonce()
    signature = sign(card_key, nonce)
    for bad in (signature[:-1] + bytes([signature[-1] ^ 1]), signature[:-1], b"", signature + b"\0"):
        with pytest.raises(CardAuthError) as excinfo:
            verify_card_authentication(nonce, bad, der, trust=trust, revocation=NeverRevoked(), now=now())
        assert error_of(excinfo) is CardAuthErrorCode.BAD_SIGNATURE


def test_signature_by_another_key_fails(
    ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey
) -> None:
    der = issue(ca, card_key)
    nonce = new_nonce()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(stranger, nonce), der, trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.BAD_SIGNATURE


def test_empty_nonce_is_refused(ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey) -> None:
    der = issue(ca, card_key)
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            b"", sign(card_key, b""), der, trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.NONCE_INVALID


# -- chain -----------------------------------------------------------------------------------------
def test_certificate_from_another_ca_fails(
    other_ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey
) -> None:
    # Same issuer DN as the trusted root, different key: the signature check catches it.
    der = issue(other_ca, card_key)
    assert x509.load_der_x509_certificate(der).issuer == AUTH_ROOT_NAME
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.UNTRUSTED_ISSUER


def test_signing_ca_certificates_are_not_authentication_roots(
    ca: JpkiDemoCa, card_key: rsa.RSAPrivateKey
) -> None:
    sign_only = TrustStore.from_pem_files([ca.root_pem_path(CaKind.SIGN)])
    der = issue(ca, card_key)
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=sign_only, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.UNTRUSTED_ISSUER


def test_several_roots_with_one_dn_like_the_jlis_generations(
    ca: JpkiDemoCa, other_ca: JpkiDemoCa, card_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(ca.root_pem_path().read_bytes() + other_ca.root_pem_path().read_bytes())
    both = TrustStore.from_pem_files([bundle])
    assert len(both.roots) == 2
    checker = CrlRevocationChecker([ca.crl_pem_path(), other_ca.crl_pem_path()], both)
    for issuer in (ca, other_ca):
        serial = next_serial()
        der = issue(issuer, card_key, serial)
        nonce = new_nonce()
        verified = verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=both, revocation=checker, now=now()
        )
        assert verified.serial_hex == normalize_serial(serial)
    # Revoked by the second generation's CRL only: found by matching the CRL to the issuer key.
    serial = next_serial()
    der = issue(other_ca, card_key, serial)
    other_ca.revoke(serial)
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=both, revocation=checker, now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.REVOKED


def test_trust_store_accepts_only_ca_roots(
    ca: JpkiDemoCa, card_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    ee = x509.load_der_x509_certificate(issue(ca, card_key))
    with pytest.raises(ValueError, match="not a CA"):
        TrustStore([ee])
    with pytest.raises(ValueError):
        TrustStore([])
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(ValueError):
        TrustStore.from_pem_files([empty])


def test_a_ca_certificate_cannot_authenticate(ca: JpkiDemoCa, trust: TrustStore) -> None:
    # The root signs itself, so it "chains"; it must still be refused as a card certificate.
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(root_key(ca), nonce), ca.root_der(), trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.WRONG_CERTIFICATE


def test_key_usage_without_digital_signature_is_refused(
    ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey
) -> None:
    start = now() - timedelta(days=1)
    der = build_cert(
        root_key(ca),
        card_key.public_key(),
        serial=0x77,
        not_before=start,
        not_after=start + timedelta(days=30),
        digital_signature=False,
    )
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.WRONG_CERTIFICATE


def test_unknown_critical_extension_is_refused(
    ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey
) -> None:
    start = now() - timedelta(days=1)
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    der = build_cert(
        root_key(ca),
        card_key.public_key(),
        serial=0x78,
        not_before=start,
        not_after=start + timedelta(days=30),
        extra=odd,
    )
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.WRONG_CERTIFICATE


# -- keys and parsing ------------------------------------------------------------------------------
def test_unknown_key_type_fails(ca: JpkiDemoCa, trust: TrustStore) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    start = now() - timedelta(days=1)
    der = build_cert(
        root_key(ca), ec_key.public_key(), serial=0x79, not_before=start, not_after=start + timedelta(days=30)
    )
    nonce = new_nonce()
    signature = ec_key.sign(nonce, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(nonce, signature, der, trust=trust, revocation=NeverRevoked(), now=now())
    assert error_of(excinfo) is CardAuthErrorCode.UNSUPPORTED_KEY


def test_short_rsa_keys_fail(ca: JpkiDemoCa, trust: TrustStore) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    der = issue(ca, small)  # type: ignore[arg-type]
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(small, nonce), der, trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.UNSUPPORTED_KEY


@pytest.mark.parametrize("der", [b"", b"not a certificate", b"\x30\x03\x02\x01\x01"])
def test_malformed_certificate_fails(der: bytes, trust: TrustStore) -> None:
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(b"n", b"s", der, trust=trust, revocation=NeverRevoked(), now=now())
    assert error_of(excinfo) is CardAuthErrorCode.MALFORMED_CERTIFICATE


def test_naive_now_is_a_programming_error(
    ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey
) -> None:
    der = issue(ca, card_key)
    with pytest.raises(ValueError, match="timezone"):
        verify_card_authentication(
            b"n", b"s", der, trust=trust, revocation=NeverRevoked(), now=datetime.now()
        )


# -- validity --------------------------------------------------------------------------------------
def test_expired_certificate_fails(ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey) -> None:
    start = now() - timedelta(days=400)
    der = build_cert(
        root_key(ca),
        card_key.public_key(),
        serial=0x7A,
        not_before=start,
        not_after=start + timedelta(days=365),
    )
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=trust, revocation=NeverRevoked(), now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.EXPIRED
    assert "有効期限" in excinfo.value.message_ja
    assert excinfo.value.message_en and excinfo.value.message_easy_ja


def test_validity_is_checked_against_now(
    ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey
) -> None:
    der = issue(ca, card_key)
    cert = x509.load_der_x509_certificate(der)
    nonce = new_nonce()
    signature = sign(card_key, nonce)
    # The demo root is valid from a day before it was made, the certificate from its issue.
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce,
            signature,
            der,
            trust=trust,
            revocation=NeverRevoked(),
            now=cert.not_valid_before_utc - timedelta(seconds=1),
        )
    assert error_of(excinfo) is CardAuthErrorCode.NOT_YET_VALID
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce,
            signature,
            der,
            trust=trust,
            revocation=NeverRevoked(),
            now=cert.not_valid_after_utc + timedelta(seconds=1),
        )
    assert error_of(excinfo) is CardAuthErrorCode.EXPIRED
    # The last second is still valid.
    verify_card_authentication(
        nonce, signature, der, trust=trust, revocation=NeverRevoked(), now=cert.not_valid_after_utc
    )


def test_an_expired_root_is_not_trusted(
    ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey
) -> None:
    der = issue(ca, card_key)
    nonce = new_nonce()
    after_root = ca.root_certificate().not_valid_after_utc + timedelta(days=1)
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=trust, revocation=NeverRevoked(), now=after_root
        )
    assert error_of(excinfo) is CardAuthErrorCode.UNTRUSTED_ISSUER


# -- revocation: CRL -------------------------------------------------------------------------------
def test_revoked_serial_fails_via_crl(
    ca: JpkiDemoCa, trust: TrustStore, crl_checker: CrlRevocationChecker, card_key: rsa.RSAPrivateKey
) -> None:
    serial = next_serial()
    der = issue(ca, card_key, serial)
    nonce = new_nonce()
    signature = sign(card_key, nonce)
    verify_card_authentication(nonce, signature, der, trust=trust, revocation=crl_checker, now=now())
    ca.revoke(serial)  # rewrites crl.pem: the checker notices the new file
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(nonce, signature, der, trust=trust, revocation=crl_checker, now=now())
    assert error_of(excinfo) is CardAuthErrorCode.REVOKED
    assert "失効" in excinfo.value.message_ja
    assert normalize_serial(serial) in str(excinfo.value)


def test_stale_crl_fails_closed(
    ca: JpkiDemoCa, trust: TrustStore, crl_checker: CrlRevocationChecker, card_key: rsa.RSAPrivateKey
) -> None:
    der = issue(ca, card_key)
    nonce = new_nonce()
    signature = sign(card_key, nonce)
    crl = x509.load_pem_x509_crl(ca.crl_pem_path().read_bytes())
    assert crl.next_update_utc is not None
    late = crl.next_update_utc + timedelta(minutes=1)
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(nonce, signature, der, trust=trust, revocation=crl_checker, now=late)
    assert error_of(excinfo) is CardAuthErrorCode.REVOCATION_UNAVAILABLE
    assert "stale" in excinfo.value.detail
    assert excinfo.value.message_ja.endswith("窓口へお越しください。")
    # A grace period, if a municipality configures one, lets a slightly late CRL through.
    lenient = CrlRevocationChecker([ca.crl_pem_path()], trust, grace=timedelta(hours=1))
    verify_card_authentication(nonce, signature, der, trust=trust, revocation=lenient, now=late)


def _write_crl(
    path: Path,
    signer: rsa.RSAPrivateKey,
    *,
    last: datetime,
    next_: datetime | None,
    revoked: tuple[int, ...] = (),
    encoding: serialization.Encoding = serialization.Encoding.PEM,
    delta: bool = False,
) -> None:
    builder = x509.CertificateRevocationListBuilder().issuer_name(AUTH_ROOT_NAME).last_update(last)
    if next_ is not None:
        builder = builder.next_update(next_)
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(1), critical=True)
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(last).build()
        )
    path.write_bytes(builder.sign(signer, hashes.SHA256()).public_bytes(encoding))


def test_crl_signed_by_an_untrusted_key_fails_closed(
    ca: JpkiDemoCa, other_ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    der = issue(ca, card_key)
    nonce = new_nonce()
    forged = tmp_path / "forged.pem"
    _write_crl(forged, root_key(other_ca), last=now(), next_=now() + timedelta(days=1))
    checker = CrlRevocationChecker([forged], trust)
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=trust, revocation=checker, now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.REVOCATION_UNAVAILABLE
    assert "not signed by a trusted root" in excinfo.value.detail


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read"),
        (b"garbage", "cannot be parsed"),
        (b"-----BEGIN X509 CRL-----\nAAAA\n", "cannot be parsed"),
    ],
)
def test_missing_or_broken_crl_file_fails_closed(
    content: bytes | None, message: str, ca: JpkiDemoCa, trust: TrustStore, tmp_path: Path
) -> None:
    path = tmp_path / "crl.pem"
    if content is not None:
        path.write_bytes(content)
    checker = CrlRevocationChecker([path], trust)
    cert = ca.root_certificate()
    with pytest.raises(RevocationUnavailable, match=message):
        checker.is_revoked(cert, cert, now=now())


def test_crl_edge_cases(ca: JpkiDemoCa, trust: TrustStore, tmp_path: Path) -> None:
    root = ca.root_certificate()
    key = root_key(ca)
    path = tmp_path / "crl.der"
    t = now()
    # DER files work; the freshest of several CRLs in one PEM file is the one used.
    _write_crl(
        path, key, last=t, next_=t + timedelta(days=1), revoked=(5,), encoding=serialization.Encoding.DER
    )
    checker = CrlRevocationChecker([path], trust)
    probe = type("Probe", (), {"serial_number": 5})()
    assert checker.is_revoked(probe, root, now=t)  # type: ignore[arg-type]
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    _write_crl(old, key, last=t - timedelta(days=2), next_=t - timedelta(days=1), revoked=(6,))
    _write_crl(new, key, last=t - timedelta(hours=1), next_=t + timedelta(days=1), revoked=(7,))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(old.read_bytes() + new.read_bytes())
    combined = CrlRevocationChecker([bundle], trust)
    assert combined.is_revoked(type("P", (), {"serial_number": 7})(), root, now=t)  # type: ignore[arg-type]
    assert not combined.is_revoked(type("P", (), {"serial_number": 6})(), root, now=t)  # type: ignore[arg-type]
    # A CRL from the future and a delta CRL are refused (cryptography cannot even build one
    # without nextUpdate, which is refused too).
    for kwargs, message in (
        ({"last": t + timedelta(hours=1), "next_": t + timedelta(days=1)}, "future"),
        ({"last": t, "next_": t + timedelta(days=1), "delta": True}, "delta"),
    ):
        odd = tmp_path / "odd.pem"
        _write_crl(odd, key, **kwargs)  # type: ignore[arg-type]
        with pytest.raises(RevocationUnavailable, match=message):
            CrlRevocationChecker([odd], trust).is_revoked(root, root, now=t)


def test_no_crl_for_the_issuer_fails_closed(
    ca: JpkiDemoCa, other_ca: JpkiDemoCa, card_key: rsa.RSAPrivateKey
) -> None:
    both = TrustStore([ca.root_certificate(), other_ca.root_certificate()])
    checker = CrlRevocationChecker([ca.crl_pem_path()], both)
    der = issue(other_ca, card_key)
    nonce = new_nonce()
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), der, trust=both, revocation=checker, now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.REVOCATION_UNAVAILABLE
    assert "no CRL" in excinfo.value.detail


def test_crl_checker_needs_files(trust: TrustStore) -> None:
    with pytest.raises(ValueError):
        CrlRevocationChecker([], trust)


# -- revocation: serial list -----------------------------------------------------------------------
def test_serial_list_checker(
    ca: JpkiDemoCa, trust: TrustStore, card_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    revoked_serial, good_serial = next_serial(), next_serial()
    revoked_der, good_der = issue(ca, card_key, revoked_serial), issue(ca, card_key, good_serial)
    listing = tmp_path / "revoked.txt"
    listing.write_text(
        "# revoked 利用者証明用 serials\n"
        f"{revoked_serial.lower()}  # written in lower case with leading zeros\n"
        "\n"
        "0a:bc:de\n",
        encoding="utf-8",
    )
    checker = SerialListRevocationChecker(listing)
    nonce = new_nonce()
    verify_card_authentication(
        nonce, sign(card_key, nonce), good_der, trust=trust, revocation=checker, now=now()
    )
    with pytest.raises(CardAuthError) as excinfo:
        verify_card_authentication(
            nonce, sign(card_key, nonce), revoked_der, trust=trust, revocation=checker, now=now()
        )
    assert error_of(excinfo) is CardAuthErrorCode.REVOKED
    # The file is re-read when it changes.
    listing.write_text(f"{good_serial}\n", encoding="utf-8")
    verify_card_authentication(
        nonce, sign(card_key, nonce), revoked_der, trust=trust, revocation=checker, now=now()
    )
    with pytest.raises(CardAuthError):
        verify_card_authentication(
            nonce, sign(card_key, nonce), good_der, trust=trust, revocation=checker, now=now()
        )


def test_serial_list_fails_closed(ca: JpkiDemoCa, tmp_path: Path) -> None:
    root = ca.root_certificate()
    missing = SerialListRevocationChecker(tmp_path / "missing.txt")
    with pytest.raises(RevocationUnavailable, match="cannot be read"):
        missing.is_revoked(root, root, now=now())
    bad = tmp_path / "bad.txt"
    bad.write_text("ABCDEF\nnot-a-serial\n", encoding="utf-8")
    with pytest.raises(RevocationUnavailable, match="line 2"):
        SerialListRevocationChecker(bad).is_revoked(root, root, now=now())
    old = tmp_path / "old.txt"
    old.write_text("ABCDEF\n", encoding="utf-8")
    week_ago = time.time() - 7 * 86400
    os.utime(old, (week_ago, week_ago))
    assert not SerialListRevocationChecker(old, max_age=timedelta(days=8)).is_revoked(root, root, now=now())
    with pytest.raises(RevocationUnavailable, match="stale"):
        SerialListRevocationChecker(old, max_age=timedelta(days=1)).is_revoked(root, root, now=now())


# -- serial formatting -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "canonical"),
    [("00A1B2", "A1B2"), ("a1b2", "A1B2"), ("0a:1b:2c", "A1B2C"), (" 0x00ff ", "FF"), (255, "FF")],
)
def test_normalize_serial(text: str | int, canonical: str) -> None:
    assert normalize_serial(text) == canonical


@pytest.mark.parametrize("text", ["", "xyz", "0", "00", "-1", "12 g"])
def test_normalize_serial_rejects_junk(text: str) -> None:
    with pytest.raises(ValueError):
        normalize_serial(text)


def test_format_serial() -> None:
    assert format_serial(0x0A) == "A"
    with pytest.raises(ValueError):
        format_serial(0)


# -- nonces ----------------------------------------------------------------------------------------
def test_new_nonce_is_32_random_bytes() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == NONCE_BYTES == 32 for n in nonces)
    assert NONCE_TTL_SECONDS == 120


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_nonce_is_single_use() -> None:
    store = MemoryNonceStore()
    nonce = issue_nonce(store, "kiosk-1")
    consume_nonce(store, nonce, "kiosk-1")
    with pytest.raises(CardAuthError) as excinfo:
        consume_nonce(store, nonce, "kiosk-1")
    assert error_of(excinfo) is CardAuthErrorCode.NONCE_INVALID
    assert "もう一度カードを置いてください" in excinfo.value.message_ja


def test_nonce_expires_after_two_minutes() -> None:
    clock = FakeClock()
    store = MemoryNonceStore(clock=clock)
    nonce = issue_nonce(store, "kiosk-1")
    clock.t += NONCE_TTL_SECONDS - 0.5
    assert store.take(nonce) == "kiosk-1"
    late = issue_nonce(store, "kiosk-1")
    clock.t += NONCE_TTL_SECONDS
    with pytest.raises(CardAuthError):
        consume_nonce(store, late, "kiosk-1")
    assert len(store) == 0


def test_nonce_is_bound_to_its_kiosk_and_burnt_by_a_wrong_one() -> None:
    store = MemoryNonceStore()
    nonce = issue_nonce(store, "kiosk-1")
    with pytest.raises(CardAuthError):
        consume_nonce(store, nonce, "kiosk-2")
    with pytest.raises(CardAuthError):
        consume_nonce(store, nonce, "kiosk-1")
    with pytest.raises(CardAuthError):
        consume_nonce(store, new_nonce(), "kiosk-1")  # never issued


def test_memory_store_limits() -> None:
    clock = FakeClock()
    store = MemoryNonceStore(clock=clock, max_entries=3)
    nonces = [issue_nonce(store, f"k{i}") for i in range(4)]
    assert len(store) == 3
    assert store.take(nonces[0]) is None  # the oldest was dropped
    assert store.take(nonces[3]) == "k3"
    with pytest.raises(ValueError):
        store.put(nonces[1], "again")
    with pytest.raises(ValueError):
        store.put(new_nonce(), "k", ttl_seconds=0)


def test_memory_store_is_thread_safe() -> None:
    store = MemoryNonceStore()
    nonces = [issue_nonce(store, "kiosk") for _ in range(50)]
    taken: list[str | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for nonce in nonces:
            result = store.take(nonce)
            with lock:
                taken.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for t in taken if t is not None) == 50  # each nonce handed out exactly once


class FakeRedis:
    """Records the commands RedisNonceStore sends; SET NX EX and GETDEL semantics."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[bytes, int]] = {}
        self.calls: list[tuple[str, ...]] = []

    def set(self, name: str, value: bytes, *, ex: int, nx: bool) -> bool | None:
        self.calls.append(("SET", name, "NX" if nx else "", f"EX {ex}"))
        if nx and name in self.data:
            return None
        self.data[name] = (value, ex)
        return True

    def getdel(self, name: str) -> bytes | None:
        self.calls.append(("GETDEL", name))
        entry = self.data.pop(name, None)
        return None if entry is None else entry[0]


def test_redis_store_uses_set_nx_ex_and_getdel() -> None:
    fake = FakeRedis()
    store = RedisNonceStore(client=fake)
    nonce = issue_nonce(store, "キオスク-1")
    key = "madoguchi:jpki-nonce:" + nonce.hex()
    assert fake.calls == [("SET", key, "NX", f"EX {NONCE_TTL_SECONDS}")]
    with pytest.raises(ValueError):
        store.put(nonce, "again")
    consume_nonce(store, nonce, "キオスク-1")
    assert fake.calls[-1] == ("GETDEL", key)
    with pytest.raises(CardAuthError):
        consume_nonce(store, nonce, "キオスク-1")
    with pytest.raises(ValueError):
        RedisNonceStore()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="Redis not configured (set MADOGUCHI_TEST_REDIS_URL)")
def test_redis_store_against_a_server() -> None:
    import redis

    store = RedisNonceStore(REDIS_URL, prefix=f"madoguchi-test:{new_nonce().hex()[:8]}:")
    nonce = issue_nonce(store, "kiosk-1", ttl_seconds=1)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        key = store._key(nonce)
        assert 0 < int(client.ttl(key)) <= 1
        assert store.take(nonce) == "kiosk-1"
        assert store.take(nonce) is None
        short = issue_nonce(store, "kiosk-1", ttl_seconds=1)
        time.sleep(1.2)
        assert store.take(short) is None
    finally:
        client.close()


# -- messages --------------------------------------------------------------------------------------
def test_every_error_has_resident_messages() -> None:
    for code in CardAuthErrorCode:
        error = CardAuthError(code, "detail for the log")
        assert error.message_ja and error.message_easy_ja and error.message_en
        if code is not CardAuthErrorCode.NONCE_INVALID:
            assert error.message_ja.endswith("窓口へお越しください。")
        assert "detail for the log" not in error.message_ja
        assert str(error) == f"{code.value}: detail for the log"
