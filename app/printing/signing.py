"""PAdES signatures on certificate PDFs (pyHanko), with the municipality's key and certificate.

A printed certificate carries the 公印 image; a PDF handed out electronically (or kept as the
issue record) also carries a PAdES baseline signature (B-B: no timestamp, no revocation data)
made with the municipality's signing key. `sign_pdf` signs, `validate_signed_pdf` checks a
signature against given trust roots (for tests and the verify tooling).

`DemoSigningKey.load_or_create(folder)` makes a demo root CA and a signing certificate for
「架空県青葉台町長」 (ECDSA P-256) once and keeps them as PEM files in `folder` — never for production:
a real municipality signs with a key from its own CA (e.g. LGPKI), given as `SignerConfig`.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import keys as asn1_keys, x509 as asn1_x509  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from app.config import Settings

__all__ = [
    "DemoSigningKey",
    "SignatureCheck",
    "SignerConfig",
    "sign_pdf",
    "signer_from_settings",
    "validate_signed_pdf",
]


@dataclass(frozen=True, slots=True)
class SignerConfig:
    """A signing key and its certificate chain, PEM-encoded (the key as PKCS#8)."""

    key_pem: bytes
    cert_pem: bytes
    chain_pem: tuple[bytes, ...] = ()  # intermediates and the root, embedded in the signature
    key_passphrase: bytes | None = None
    reason: str = "証明書の交付"
    location: str = ""
    field_name: str = "MunicipalSeal"


def signer_from_settings(settings: Settings) -> SignerConfig:
    """The configured key (MADOGUCHI_SIGNING_KEY_FILE, _CERT_FILE, _CHAIN_FILES), or else the demo
    key, made once in <data_dir>/signing. Raises ValueError when a key is set without its certificate."""
    if settings.signing_key_file:
        if not settings.signing_cert_file:
            raise ValueError("MADOGUCHI_SIGNING_KEY_FILE needs MADOGUCHI_SIGNING_CERT_FILE")
        config = SignerConfig(
            key_pem=Path(settings.signing_key_file).read_bytes(),
            cert_pem=Path(settings.signing_cert_file).read_bytes(),
            chain_pem=tuple(path.read_bytes() for path in settings.paths(settings.signing_chain_files)),
        )
        _signer(config)  # fail at start-up, not at the first print, if the files do not match
        return config
    return DemoSigningKey.load_or_create(settings.data_dir / "signing").signer_config()


def _der_certificate(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@functools.lru_cache(maxsize=8)
def _signer(config: SignerConfig) -> signers.SimpleSigner:
    private_key = serialization.load_pem_private_key(config.key_pem, password=config.key_passphrase)
    key_der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    certificate = asn1_x509.Certificate.load(_der_certificate(config.cert_pem))
    chain = [asn1_x509.Certificate.load(_der_certificate(pem)) for pem in config.chain_pem]
    registry = SimpleCertificateStore()  # type: ignore[no-untyped-call]
    registry.register_multiple([certificate, *chain])
    return signers.SimpleSigner(
        signing_cert=certificate,
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=registry,
    )


def sign_pdf(pdf: bytes, config: SignerConfig) -> bytes:
    """The PDF with a PAdES (ETSI.CAdES.detached) signature over the whole file appended."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    metadata = signers.PdfSignatureMetadata(
        field_name=config.field_name,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=config.reason,
        location=config.location or None,
    )
    output = signers.sign_pdf(writer, metadata, signer=_signer(config))
    return bytes(output.getvalue())


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    intact: bool  # the signed bytes were not changed
    valid: bool  # the signature verifies with the certificate's key
    trusted: bool  # the certificate chains to one of the trust roots
    covers_whole_file: bool  # nothing was appended after signing
    signer_subject: str
    field_name: str

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted and self.covers_whole_file


def validate_signed_pdf(pdf: bytes, trust_roots_pem: Sequence[bytes]) -> list[SignatureCheck]:
    """Check every signature in `pdf` against `trust_roots_pem`, offline (no OCSP/CRL fetching)."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    roots = [asn1_x509.Certificate.load(_der_certificate(pem)) for pem in trust_roots_pem]
    checks: list[SignatureCheck] = []
    for embedded in reader.embedded_signatures:
        context = ValidationContext(trust_roots=roots, allow_fetching=False)
        status = validate_pdf_signature(embedded, context)
        coverage = getattr(status.coverage, "name", "")
        checks.append(
            SignatureCheck(
                intact=bool(status.intact),
                valid=bool(status.valid),
                trusted=bool(status.trusted),
                covers_whole_file=coverage == "ENTIRE_FILE",
                signer_subject=str(status.signing_cert.subject.human_friendly),
                field_name=str(embedded.field_name),
            )
        )
    return checks


# --- Demo key material --------------------------------------------------------------------------

_ROOT_FILE = "demo-root-ca.pem"
_CERT_FILE = "demo-signer.pem"
_KEY_FILE = "demo-signer-key.pem"


@dataclass(frozen=True, slots=True)
class DemoSigningKey:
    root_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def load_or_create(cls, folder: Path, signer_name: str = "架空県青葉台町長") -> DemoSigningKey:
        """Load the demo CA and signer from `folder`, creating them first if missing or expiring."""
        paths = [folder / name for name in (_ROOT_FILE, _CERT_FILE, _KEY_FILE)]
        if all(path.is_file() for path in paths):
            root_pem, cert_pem, key_pem = (path.read_bytes() for path in paths)
            certificate = x509.load_pem_x509_certificate(cert_pem)
            if certificate.not_valid_after_utc > datetime.now(UTC) + timedelta(days=30):
                return cls(root_pem, cert_pem, key_pem)
        created = cls.create(signer_name)
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / _ROOT_FILE, created.root_pem, 0o644)
        _write(folder / _CERT_FILE, created.cert_pem, 0o644)
        _write(folder / _KEY_FILE, created.key_pem, 0o600)
        return created

    @classmethod
    def create(cls, signer_name: str = "架空県青葉台町長") -> DemoSigningKey:
        now = datetime.now(UTC) - timedelta(minutes=5)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Madoguchi demo"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Madoguchi Demo Root CA (not for production)"),
            ]
        )
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        signer_key = ec.generate_private_key(ec.SECP256R1())
        signer = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Madoguchi demo"),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"{signer_name} (demo)"),
                    ]
                )
            )
            .issuer_name(root_name)
            .public_key(signer_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=730))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        return cls(
            root_pem=root.public_bytes(serialization.Encoding.PEM),
            cert_pem=signer.public_bytes(serialization.Encoding.PEM),
            key_pem=signer_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )

    def signer_config(self, location: str = "") -> SignerConfig:
        return SignerConfig(
            key_pem=self.key_pem, cert_pem=self.cert_pem, chain_pem=(self.root_pem,), location=location
        )


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temp, path)
