"""PAdES signing: the fast path (our own incremental update, a CMS spliced from pyHanko's
template) validates like pyHanko's own signatures, and files it does not handle go to pyHanko."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydyf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pypdf import PdfReader

from app.printing import signing
from app.printing.pdf_update import UnsupportedPdfError, append_signature_field, text_string
from app.printing.signing import DemoSigningKey, SignerConfig, sign_pdf, validate_signed_pdf


@pytest.fixture(scope="module")
def demo_key() -> DemoSigningKey:
    return DemoSigningKey.create()


def simple_pdf(
    *,
    compress: bool,
    pages: int = 1,
    link: bool = False,
    identifier: bool = False,
    acroform: bool = False,
    indirect_annots: bool = False,
) -> bytes:
    """A small PDF as WeasyPrint writes them (pydyf): classic xref table, or with `compress` an
    xref stream and an object stream."""
    document = pydyf.PDF()
    if acroform:
        document.catalog["AcroForm"] = pydyf.Dictionary({"Fields": pydyf.Array()})
    document.info["Title"] = pydyf.String("証明書")
    for number in range(pages):
        content = pydyf.Stream(compress=compress)
        content.rectangle(72, 72 + number, 100, 50)
        content.fill()
        document.add_object(content)
        page = pydyf.Dictionary(
            {
                "Type": "/Page",
                "Parent": document.pages.reference,
                "MediaBox": pydyf.Array([0, 0, 595.28, 841.89]),
                "Contents": content.reference,
                "Resources": pydyf.Dictionary({}),
            }
        )
        if link:
            page["Annots"] = pydyf.Array(
                [
                    pydyf.Dictionary(
                        {
                            "Type": "/Annot",
                            "Subtype": "/Link",
                            "Rect": pydyf.Array([10, 10, 50, 20]),
                            "A": pydyf.Dictionary(
                                {"S": "/URI", "URI": pydyf.String("https://example.jp/(x)")}
                            ),
                        }
                    )
                ]
            )
        if indirect_annots:
            annotations = pydyf.Array()
            document.add_object(annotations)
            page["Annots"] = annotations.reference
        document.add_page(page)
    output = io.BytesIO()
    document.write(output, compress=compress, identifier=identifier)
    return output.getvalue()


@pytest.fixture
def no_pyhanko_signing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pdf: bytes, config: SignerConfig) -> bytes:
        raise AssertionError("the fast path was expected")

    monkeypatch.setattr(signing, "_sign_with_pyhanko", refuse)


def _pdfsig(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout


@pytest.mark.usefixtures("no_pyhanko_signing")
@pytest.mark.parametrize("compress", [False, True], ids=["xref-table", "xref-stream"])
def test_fast_path_signature_validates(compress: bool, demo_key: DemoSigningKey, tmp_path: Path) -> None:
    original = simple_pdf(compress=compress, pages=2, identifier=compress)
    signed = sign_pdf(original, demo_key.signer_config(location="青葉台町役場"))

    assert signed.startswith(original)  # an incremental update: the original bytes stay
    [check] = validate_signed_pdf(signed, [demo_key.root_pem])
    assert check.ok, check
    assert check.field_name == "MunicipalSeal"
    assert signed.count(b"/FT /Sig") == 1

    reader = PdfReader(io.BytesIO(signed), strict=True)
    assert list(reader.get_fields() or {}) == ["MunicipalSeal"]
    [widget] = [annotation.get_object() for annotation in reader.pages[0]["/Annots"]]
    assert widget["/Rect"] == [0, 0, 0, 0] and widget["/F"] == 132
    assert widget["/P"].get_object() == reader.pages[0]
    assert "/Annots" not in reader.pages[1]
    signature = widget["/V"].get_object()
    assert signature["/SubFilter"] == "/ETSI.CAdES.detached"
    assert signature["/Reason"] == "証明書の交付" and signature["/Location"] == "青葉台町役場"
    assert reader.metadata is not None and reader.metadata.title == "証明書"

    if shutil.which("pdfsig"):
        report = _pdfsig(signed, tmp_path)
        assert "Signature is Valid" in report and "Total document signed" in report, report


@pytest.mark.usefixtures("no_pyhanko_signing")
@pytest.mark.parametrize("compress", [False, True], ids=["xref-table", "xref-stream"])
def test_changing_one_byte_breaks_the_signature(compress: bool, demo_key: DemoSigningKey) -> None:
    signed = sign_pdf(simple_pdf(compress=compress), demo_key.signer_config())
    # a byte of the original (its version), a byte of the update (a digit of /M)
    for position in (7, signed.index(b"/M (D:") + 8):
        tampered = bytearray(signed)
        tampered[position] ^= 0x01
        [check] = validate_signed_pdf(bytes(tampered), [demo_key.root_pem])
        assert not check.intact and not check.ok

    [other_root] = validate_signed_pdf(signed, [DemoSigningKey.create().root_pem])
    assert other_root.intact and other_root.valid and not other_root.trusted


@pytest.mark.usefixtures("no_pyhanko_signing")
def test_existing_annotations_are_kept(demo_key: DemoSigningKey) -> None:
    signed = sign_pdf(simple_pdf(compress=True, link=True), demo_key.signer_config())
    [check] = validate_signed_pdf(signed, [demo_key.root_pem])
    assert check.ok
    annotations = [a.get_object() for a in PdfReader(io.BytesIO(signed)).pages[0]["/Annots"]]
    assert [a["/Subtype"] for a in annotations] == ["/Link", "/Widget"]
    assert annotations[0]["/A"]["/URI"] == "https://example.jp/(x)"


def test_signed_file_is_signed_again_through_pyhanko(
    demo_key: DemoSigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = sign_pdf(simple_pdf(compress=True), demo_key.signer_config())
    calls: list[bytes] = []
    pyhanko_signing = signing._sign_with_pyhanko

    def spy(pdf: bytes, config: SignerConfig) -> bytes:
        calls.append(pdf)
        return pyhanko_signing(pdf, config)

    monkeypatch.setattr(signing, "_sign_with_pyhanko", spy)
    second = sign_pdf(first, SignerConfig(**{**_fields(demo_key.signer_config()), "field_name": "Second"}))
    assert calls == [first]  # it has an /AcroForm and an earlier update: not ours to write
    earlier, later = validate_signed_pdf(second, [demo_key.root_pem])
    assert (earlier.field_name, later.field_name) == ("MunicipalSeal", "Second")
    assert earlier.intact and earlier.valid and earlier.trusted and not earlier.covers_whole_file
    assert later.ok


def _fields(config: SignerConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in SignerConfig.__slots__}


@pytest.mark.parametrize(
    ("pdf", "reason"),
    [
        (b"not a pdf", "no startxref"),
        (b"%PDF-1.7\n1 0 obj\n<</Type /Catalog>>\nendobj\nstartxref\n9\n%%EOF\n", "no xref stream"),
        (simple_pdf(compress=False).replace(b"/Size", b"/Encrypt 9 0 R /Size"), "/Encrypt"),
        (simple_pdf(compress=True).replace(b"/FlateDecode", b"/LZWDecode  "), "filter"),
        (simple_pdf(compress=True, acroform=True), "/AcroForm"),
        (simple_pdf(compress=False, indirect_annots=True), "/Annots"),
    ],
    ids=["garbage", "no-xref", "encrypted", "lzw", "acroform", "indirect-annots"],
)
def test_files_the_fast_path_does_not_handle(pdf: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedPdfError, match=reason):
        append_signature_field(pdf, field_name="X", contents_size=100, signing_time=datetime.now(UTC))


def test_text_strings() -> None:
    assert text_string("a(b)\\c") == b"(a\\(b\\)\\\\c)"
    assert text_string("町") == b"<FEFF753A>"
    assert (
        text_string("tab\there") == b"<FEFF" + "tab\there".encode("utf-16-be").hex().upper().encode() + b">"
    )


def _rsa_signer() -> tuple[SignerConfig, bytes]:
    """An RSA (PKCS#1 v1.5) signing key, as LGPKI issues, under its own root."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test RSA root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(signing._key_usage(ca=True), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "青葉台町長 RSA")]))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(signing._key_usage(ca=False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    root_pem = root.public_bytes(pem)
    config = SignerConfig(
        key_pem=key.private_bytes(
            pem,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
        key_passphrase=b"secret",
        cert_pem=certificate.public_bytes(pem),
        chain_pem=(root_pem,),
    )
    return config, root_pem


@pytest.mark.usefixtures("no_pyhanko_signing")
def test_rsa_key_on_the_fast_path() -> None:
    config, root_pem = _rsa_signer()
    signed = sign_pdf(simple_pdf(compress=True), config)
    [check] = validate_signed_pdf(signed, [root_pem])
    assert check.ok, check
    assert "RSA" in check.signer_subject


@pytest.mark.slow
@pytest.mark.usefixtures("no_pyhanko_signing")
def test_certificate_from_weasyprint_takes_the_fast_path(demo_key: DemoSigningKey) -> None:
    from app.printing.pdf import render_pdf

    rendered = render_pdf("<p>住民票の写し</p><p style='break-before: page'>2</p>", title="住民票")
    signed = sign_pdf(rendered.pdf, demo_key.signer_config())
    [check] = validate_signed_pdf(signed, [demo_key.root_pem])
    assert check.ok, check
    assert signed.count(b"/FT /Sig") == 1
