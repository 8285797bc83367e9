"""PAdES signatures on certificate PDFs (pyHanko), with the municipality's key and certificate.

A printed certificate carries the 公印 image; a PDF handed out electronically (or kept as the
issue record) also carries a PAdES baseline signature (B-B: no timestamp, no revocation data)
made with the municipality's signing key. `sign_pdf` signs, `validate_signed_pdf` checks a
signature against given trust roots (for tests and the verify tooling).

Signing is on the print path, so it is kept cheap (see docs/decisions.md, 2026-11-21): the
incremental update (signature field, widget, signature dictionary, xref) is written by
`app.printing.pdf_update`, and the CMS SignedData comes from a per-key template that pyHanko
builds once — each signature only splices in the document digest and the raw signature of the
signed attributes. Files that `pdf_update` does not handle are signed by pyHanko's PdfSigner.

`DemoSigningKey.load_or_create(folder)` makes a demo root CA and a signing certificate for
「架空県青葉台町長」 (ECDSA P-256) once and keeps them as PEM files in `folder` — never for production:
a real municipality signs with a key from its own CA (e.g. LGPKI), given as `SignerConfig`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import cms, keys as asn1_keys, x509 as asn1_x509  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from app.config import Settings
from app.printing.pdf_update import UnsupportedPdfError, append_signature_field

__all__ = [
    "DemoSigningKey",
    "SignatureCheck",
    "SignerConfig",
    "sign_pdf",
    "signer_from_settings",
    "validate_signed_pdf",
]

log = logging.getLogger("madoguchi.signing")


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
    template = _cms_template(config)
    if template is not None:
        try:
            update = append_signature_field(
                pdf,
                field_name=config.field_name,
                contents_size=template.max_size,
                signing_time=datetime.now(UTC),
                reason=config.reason,
                location=config.location,
            )
        except UnsupportedPdfError as error:
            log.debug("signing through pyHanko's PdfSigner: %s", error)
        else:
            head, tail = update.signed_parts()
            digest = hashlib.sha256(head)
            digest.update(tail)
            return update.with_contents(template.content_info(digest.digest()))
    return _sign_with_pyhanko(pdf, config)


def _sign_with_pyhanko(pdf: bytes, config: SignerConfig) -> bytes:
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


# The CMS of a PAdES B-B signature by one key differs between documents only in the
# message-digest attribute and the signature value: pyHanko builds it once for a probe digest and
# `_CmsTemplate` keeps the DER pieces around those two.

_PROBE_DIGEST = bytes(range(0xA0, 0xC0))  # 32 bytes, the SHA-256 size; found exactly once
_PADES_ATTRIBUTES = {"content_type", "message_digest", "signing_certificate_v2"}


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


@dataclass(frozen=True, slots=True)
class _CmsTemplate:
    content_type: bytes  # ContentInfo.contentType (id-signedData)
    signed_data_head: bytes  # SignedData version, digestAlgorithms, encapContentInfo, certificates
    signer_info_head: bytes  # SignerInfo version, sid, digestAlgorithm
    attributes_before: bytes  # the signed attributes' content up to the message digest value …
    attributes_after: bytes  # … and after it
    signature_algorithm: bytes
    sign_raw: Callable[[bytes], bytes]  # the signature of the DER-encoded signed attributes
    max_size: int  # room for any signature by this key

    def content_info(self, digest: bytes) -> bytes:
        """The DER ContentInfo (SignedData) signing a document with the SHA-256 `digest`."""
        attributes = self.attributes_before + digest + self.attributes_after
        return self.assemble(attributes, self.sign_raw(_der(0x31, attributes)))

    def assemble(self, attributes: bytes, signature: bytes) -> bytes:
        signer_info = _der(
            0x30,
            self.signer_info_head
            + _der(0xA0, attributes)  # [0] IMPLICIT SET OF Attribute
            + self.signature_algorithm
            + _der(0x04, signature),
        )
        signed_data = _der(0x30, self.signed_data_head + _der(0x31, signer_info))
        return _der(0x30, self.content_type + _der(0xA0, signed_data))


@functools.lru_cache(maxsize=8)
def _cms_template(config: SignerConfig) -> _CmsTemplate | None:
    """The template for `config`'s key, or None (sign through pyHanko's PdfSigner) when pyHanko's
    CMS is not of the expected shape."""
    signer = _signer(config)
    reference = asyncio.run(signer.async_sign(_PROBE_DIGEST, "sha256", use_pades=True))
    der = bytes(reference.dump())
    content_info = cms.ContentInfo.load(der)
    signed_data = content_info["content"]
    signer_infos = signed_data["signer_infos"]
    signer_info = signer_infos[0] if len(signer_infos) == 1 else None
    if signer_info is None or signed_data["crls"].dump() or signer_info["unsigned_attrs"].dump():
        log.warning("unexpected CMS from pyHanko: every signature is made by its PdfSigner")
        return None
    attribute_types = [attribute["type"].native for attribute in signer_info["signed_attrs"]]
    attributes = bytes(signer_info["signed_attrs"].contents)
    if sorted(attribute_types) != sorted(_PADES_ATTRIBUTES) or attributes.count(_PROBE_DIGEST) != 1:
        log.warning("unexpected signed attributes %s: signing through PdfSigner", attribute_types)
        return None
    before, after = attributes.split(_PROBE_DIGEST)
    template = _CmsTemplate(
        content_type=bytes(content_info["content_type"].dump()),
        signed_data_head=b"".join(
            bytes(signed_data[name].dump())
            for name in ("version", "digest_algorithms", "encap_content_info", "certificates")
        ),
        signer_info_head=b"".join(
            bytes(signer_info[name].dump()) for name in ("version", "sid", "digest_algorithm")
        ),
        attributes_before=before,
        attributes_after=after,
        signature_algorithm=bytes(signer_info["signature_algorithm"].dump()),
        sign_raw=_raw_signer(config, str(signer_info["signature_algorithm"].signature_algo), signer),
        max_size=len(der) + 64,  # ECDSA signatures vary by a few bytes
    )
    # The pieces must rebuild pyHanko's bytes exactly, or the splicing is wrong.
    if template.assemble(attributes, bytes(signer_info["signature"].native)) != der:
        log.warning("CMS template does not rebuild pyHanko's CMS: signing through PdfSigner")
        return None
    return template


def _raw_signer(
    config: SignerConfig, mechanism: str, signer: signers.SimpleSigner
) -> Callable[[bytes], bytes]:
    """Sign with the key loaded once (pyHanko's `sign_raw` loads it on every call)."""
    key = serialization.load_pem_private_key(config.key_pem, password=config.key_passphrase)
    if mechanism == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
        ec_key = key
        return lambda data: ec_key.sign(data, ec.ECDSA(hashes.SHA256()))
    if mechanism == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
        rsa_key = key
        return lambda data: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return lambda data: signer.sign_raw(data, "sha256")


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
