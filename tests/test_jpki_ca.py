"""The demo JPKI CA: roots shaped like J-LIS's, end-entity certificates, CRLs, caching on disk."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from device_bridge.simulators.jpki_ca import (
    AUTH_ROOT_NAME,
    OID_ADDRESS,
    OID_BIRTH,
    OID_NAME,
    OID_SEX,
    CaKind,
    Holder,
    JpkiDemoCa,
    parse_serial,
)

HOLDER = Holder("佐藤　花子", "北海道札幌市中央区北１条西２丁目", date(1990, 4, 1), "2")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jpki-ca")


@pytest.fixture(scope="module")
def ca(folder: Path) -> JpkiDemoCa:
    return JpkiDemoCa.load_or_create(folder)


def _public_key(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_auth_root_is_shaped_like_the_jlis_root(ca: JpkiDemoCa) -> None:
    root = ca.root_certificate(CaKind.AUTH)
    assert root.subject == root.issuer == AUTH_ROOT_NAME
    assert root.subject.rfc4514_string() == (
        "OU=Madoguchi demo (not J-LIS),OU=JPKI for user authentication,O=JPKI-DEMO,C=JP"
    )
    assert root.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert _public_key(root).key_size == 2048
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    root.verify_directly_issued_by(root)
    sign_root = ca.root_certificate(CaKind.SIGN)
    assert "JPKI for digital signature" in sign_root.subject.rfc4514_string()
    assert _public_key(sign_root) != _public_key(root)


def test_reload_keeps_the_same_roots(ca: JpkiDemoCa, folder: Path) -> None:
    again = JpkiDemoCa.load_or_create(folder)
    assert again.root_der(CaKind.AUTH) == ca.root_der(CaKind.AUTH)
    assert again.root_der(CaKind.SIGN) == ca.root_der(CaKind.SIGN)
    assert ca.root_pem_path().read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    key_mode = stat.S_IMODE((folder / "auth-ca" / "key.pem").stat().st_mode)
    assert key_mode == 0o600


def test_auth_certificate(ca: JpkiDemoCa, folder: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    cert = ca.issue_auth_certificate("00EE74FA27E255214F", key.public_key(), not_before=start)
    assert cert.serial_number == 0xEE74FA27E255214F
    assert cert.issuer == AUTH_ROOT_NAME
    attributes = {a.oid: a.value for a in cert.subject}
    assert set(attributes) == {NameOID.COUNTRY_NAME, NameOID.COMMON_NAME}
    assert attributes[NameOID.COUNTRY_NAME] == "JP"
    assert "佐藤" not in cert.subject.rfc4514_string()
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == datetime(2030, 6, 1, tzinfo=UTC)
    cert.verify_directly_issued_by(ca.root_certificate(CaKind.AUTH))
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0]
    assert dp.full_name is not None and isinstance(dp.full_name[0], x509.DirectoryName)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert (folder / "issued" / "auth-EE74FA27E255214F.pem").exists()


def test_sign_certificate_carries_the_four_attributes(ca: JpkiDemoCa) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = ca.issue_sign_certificate(0x1234, key.public_key(), HOLDER)
    cert.verify_directly_issued_by(ca.root_certificate(CaKind.SIGN))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    values = {name.type_id: name.value for name in san.get_values_for_type(x509.OtherName)}
    assert values[OID_NAME] == b"\x0c" + bytes((len(HOLDER.name.encode()),)) + HOLDER.name.encode()
    assert values[OID_SEX] == b"\x0c\x012"
    assert values[OID_BIRTH] == b"\x0c\x0819900401"
    assert HOLDER.address.encode() in values[OID_ADDRESS]


def test_card_credentials_are_cached(ca: JpkiDemoCa, folder: Path) -> None:
    first = ca.card_credentials("CARD-1", "0A", "0B", HOLDER)
    second = ca.card_credentials("CARD-1", "0A", "0B", HOLDER)
    assert second.auth_cert == first.auth_cert and second.sign_cert == first.sign_cert
    assert second.auth_key.private_numbers() == first.auth_key.private_numbers()
    assert (folder / "cards" / "CARD-1" / "auth_key.pem").exists()
    cert = x509.load_der_x509_certificate(first.auth_cert)
    assert _public_key(cert) == first.auth_key.public_key()
    signature = first.auth_key.sign(b"nonce", padding.PKCS1v15(), hashes.SHA256())
    _public_key(cert).verify(signature, b"nonce", padding.PKCS1v15(), hashes.SHA256())
    # A renewed card (new serial) gets a new certificate for the same key.
    renewed = ca.card_credentials("CARD-1", "0C", "0B", HOLDER)
    assert x509.load_der_x509_certificate(renewed.auth_cert).serial_number == 0x0C
    assert renewed.auth_key.private_numbers() == first.auth_key.private_numbers()
    with pytest.raises(ValueError):
        ca.card_credentials("../escape", "0A", "0B", HOLDER)


def test_revocation_list(ca: JpkiDemoCa, folder: Path) -> None:
    root = ca.root_certificate(CaKind.AUTH)
    assert ca.crl().get_revoked_certificate_by_serial_number(0xABCDEF) is None
    ca.revoke("ABCDEF")
    ca.revoke(0xABCDEF)  # idempotent
    crl = x509.load_pem_x509_crl(ca.crl_pem().encode())
    assert crl.is_signature_valid(_public_key(root))
    assert crl.issuer == root.subject
    assert crl.get_revoked_certificate_by_serial_number(0xABCDEF) is not None
    assert len(crl) == len(ca.revoked_serials())
    on_disk = x509.load_pem_x509_crl((folder / "auth-ca" / "crl.pem").read_bytes())
    assert on_disk.get_revoked_certificate_by_serial_number(0xABCDEF) is not None
    assert JpkiDemoCa.load_or_create(folder).is_revoked("ABCDEF")
    assert not ca.is_revoked("ABCDEF", CaKind.SIGN)
    ca.unrevoke("ABCDEF")
    assert not ca.is_revoked("ABCDEF")
    assert (
        x509.load_pem_x509_crl(ca.crl_pem_path().read_bytes()).get_revoked_certificate_by_serial_number(
            0xABCDEF
        )
        is None
    )


def test_parse_serial() -> None:
    assert parse_serial("00:0A:1B") == 0x0A1B
    assert parse_serial(" ee74fa27e255214f ") == 0xEE74FA27E255214F
    for bad in ("0", "zz", -1, 1 << 160):
        with pytest.raises(ValueError):
            parse_serial(bad)
