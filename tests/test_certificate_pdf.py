"""Certificate PDFs, checked from the outside: poppler's pdftotext / pdffonts / pdftoppm / pdfimages,
zxing-cpp for the QR codes, pyHanko for the signature.

Synthetic people with rare characters: 𠮷田 (U+20BB7), 山﨑 (U+FA11, a compatibility ideograph
that NFC would fold to 崎) and 髙橋 (U+9AD9).
"""

from __future__ import annotations

import html
import io
import re
import subprocess
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from app.config import Settings
from app.domain.certificates import CertificateType, JuminhyoLayout, JuminhyoOptions
from app.domain.registry import Sex
from app.models.org import Municipality
from app.models.registry import Household, Resident, SealRegistration, TaxRecord
from app.printing import pdf as pdf_module
from app.printing.certificates import (
    FRAMES,
    CertificateData,
    HouseholdRecord,
    MunicipalityInfo,
    PersonRecord,
    RenderedCertificate,
    SealRecord,
    TaxRecordData,
    document_hash,
    render_certificate,
    render_certificate_flowing,
)
from app.printing.pdf import PdfLayoutError, missing_fonts, needs_mj_font
from app.printing.seal import blacken_seal, make_demo_seal
from app.printing.signing import DemoSigningKey, sign_pdf, signer_from_settings, validate_signed_pdf
from app.printing.verify import parse_verification_url

pytestmark = pytest.mark.slow

YOSHI = "\U00020bb7"  # 𠮷
SAKI = "\ufa11"  # 﨑
TAKA = "\u9ad9"  # 髙
ADDRESS = "架空県青葉台町中央一丁目2番3号"
VERIFY = "https://aobadai.example.jp"
ISSUED = datetime(2026, 4, 21, 10, 15, tzinfo=timezone(timedelta(hours=9)))
SEAL_PNG = make_demo_seal()


def _person(
    index: int, name: str, kana: str, relationship: str, birth: date, **extra: object
) -> PersonRecord:
    fields: dict[str, object] = {
        "name": name,
        "birth_date": birth,
        "sex": Sex.MALE,
        "resident_id": index,
        "name_kana": kana,
        "relationship": relationship,
        "address": ADDRESS,
        "honseki": "架空県青葉台町中央一丁目2番地",
        "hittousha": f"{YOSHI}田　太郎",
        "became_resident_on": date(2001, 4, 1),
        "address_set_on": date(2010, 5, 6),
        "previous_address": "東京都千代田区霞が関一丁目1番1号",
        "resident_code": f"1234567890{index}",
        "my_number": f"98765432101{index}",
    }
    fields.update(extra)
    return PersonRecord(**fields)  # type: ignore[arg-type]


PEOPLE = (
    _person(1, f"{YOSHI}田　太郎", "ヨシダ　タロウ", "世帯主", date(1970, 5, 3)),
    _person(
        2,
        f"{YOSHI}田　花子",
        "ヨシダ　ハナコ",
        "妻",
        date(1972, 8, 9),
        sex=Sex.FEMALE,
        former_surname=f"山{SAKI}",
    ),
    _person(3, f"{YOSHI}田　一郎", "ヨシダ　イチロウ", "子", date(2005, 1, 20)),
    _person(4, f"{TAKA}橋　次郎", "タカハシ　ジロウ", "同居人", date(1989, 1, 7)),
    _person(5, f"山{SAKI}　三郎", "ヤマサキ　サブロウ", "同居人", date(2019, 5, 1)),
    _person(
        6,
        "SMITH JOHN",
        "スミス　ジョン",
        "同居人",
        date(1985, 3, 4),
        nationality="アメリカ合衆国",
        residence="中長期在留者　技術・人文知識・国際業務",
    ),
)
HOUSEHOLD = HouseholdRecord("0001", f"{YOSHI}田　太郎", ADDRESS, "青葉台ハイツ101号")
TOWN = MunicipalityInfo(
    code="993417", name="青葉台町", mayor_name="緑川　晴彦", prefecture="架空県", seal_png=SEAL_PNG
)


def juminhyo(persons: int = 3, copies: int = 1, **options: object) -> CertificateData:
    return CertificateData(
        certificate_type=CertificateType.JUMINHYO,
        municipality=TOWN,
        issued_at=ISSUED,
        terminal_code="K01",
        printer_code="P01",
        serial_start=12,
        verify_base_url=VERIFY,
        persons=PEOPLE[:persons],
        household=HOUSEHOLD,
        juminhyo_options=JuminhyoOptions(**options),  # type: ignore[arg-type]
        copies=copies,
        reception_number="128",
        salt="test-salt",
    )


def inkan() -> CertificateData:
    return CertificateData(
        certificate_type=CertificateType.INKAN,
        municipality=TOWN,
        issued_at=ISSUED,
        terminal_code="K01",
        printer_code="P01",
        serial_start=40,
        verify_base_url=VERIFY,
        persons=(PEOPLE[4],),
        seal=SealRecord("A-000123", date(2015, 6, 1), make_demo_seal(f"山{SAKI}", size_px=200)),
        reception_number="129",
    )


def tax(municipal: int, prefectural: int) -> CertificateData:
    return CertificateData(
        certificate_type=CertificateType.TAX,
        municipality=TOWN,
        issued_at=ISSUED,
        terminal_code="K01",
        printer_code="",
        serial_start=7,
        verify_base_url=VERIFY,
        persons=(PEOPLE[3],),
        tax=TaxRecordData(2026, 3_456_000, 2_100_000, municipal, prefectural, dependants=1),
    )


# --- poppler helpers ----------------------------------------------------------------------------------


def page_texts(pdf: bytes, tmp_path: Path, pages: int) -> list[str]:
    """Each page's words in reading order: lines from top to bottom, words left to right (from
    pdftotext's word boxes, so the order does not depend on the order they are drawn in)."""
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(
        ["pdftotext", "-bbox", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout
    texts: list[str] = []
    for page in listing.split("<page ")[1 : pages + 1]:
        words = [
            (float(y_max), float(x_min), html.unescape(word))
            for x_min, y_max, word in re.findall(
                r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="[\d.]+" yMax="([\d.]+)">(.*?)</word>', page
            )
        ]
        lines: list[list[tuple[float, float, str]]] = []
        for word in sorted(words):
            if lines and abs(lines[-1][0][0] - word[0]) < 2.5:
                lines[-1].append(word)
            else:
                lines.append([word])
        texts.append("\n".join(" ".join(w[2] for w in sorted(line, key=lambda w: w[1])) for line in lines))
    return texts


def page_image(pdf: bytes, tmp_path: Path, page: int, dpi: int = 150) -> Image.Image:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    png = subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page), "-png", str(path)],
        capture_output=True,
        check=True,
    ).stdout
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("L")


def compact(text: str) -> str:
    """Names and numbers are compared without the spaces pdftotext puts between words."""
    return re.sub(r"\s+", "", text)


CERTIFICATION = "この写しは、世帯全員の住民票の原本と相違ないことを証明する。"


@pytest.fixture(scope="module")
def six_two_copies() -> RenderedCertificate:
    return render_certificate(
        juminhyo(6, copies=2, show_head_relationship=True, show_honseki=True, show_my_number=True)
    )


def test_fonts_are_installed() -> None:
    assert missing_fonts() == []


# --- 住民票の写し ----------------------------------------------------------------------------------------


def test_three_person_household_on_one_page(tmp_path: Path) -> None:
    rendered = render_certificate(juminhyo(3))
    assert rendered.pages == 1 and rendered.pages_per_copy == 1
    assert rendered.issue_numbers == ["20260421 993417 K01 P01 012 1/1"]
    [text] = page_texts(rendered.pdf, tmp_path, 1)
    flat = compact(text)
    for name in (f"{YOSHI}田太郎", f"{YOSHI}田花子", f"{YOSHI}田一郎", f"山{SAKI}"):
        assert name in flat  # exact code points: 𠮷 and 﨑 survive, not 吉 / 崎
    assert "崎" not in flat
    assert "昭和45年5月3日" in flat and "平成17年1月20日" in flat  # 和暦 birth dates
    assert "平成13年4月1日" in flat  # 住民となった年月日
    assert "発行番号20260421993417K01P010121/1" in flat
    assert "受付番号128" in flat
    assert compact(CERTIFICATION) in flat
    assert "令和8年4月21日" in flat
    assert "架空県青葉台町長緑川晴彦" in flat
    # Optional items are omitted by default.
    for omitted in ("本籍", "筆頭者", "個人番号", "住民票コード", "続柄", "世帯主", "987654321011"):
        assert omitted not in flat


def test_six_persons_make_two_pages_per_copy_and_each_copy_its_own_number(
    six_two_copies: RenderedCertificate, tmp_path: Path
) -> None:
    rendered = six_two_copies
    assert rendered.pages_per_copy == 2
    assert rendered.pages == 4
    assert rendered.issue_numbers == [
        "20260421 993417 K01 P01 012 1/2",
        "20260421 993417 K01 P01 012 2/2",
        "20260421 993417 K01 P01 013 1/2",
        "20260421 993417 K01 P01 013 2/2",
    ]
    texts = [compact(text) for text in page_texts(rendered.pdf, tmp_path, 4)]
    for text, number in zip(texts, rendered.issue_numbers, strict=True):
        assert "発行番号" + number.replace(" ", "") in text
        others = [n for n in rendered.issue_numbers if n != number]
        assert not any("発行番号" + other.replace(" ", "") in text for other in others)
    # 認証文 only on the last page of each copy.
    assert [compact(CERTIFICATION) in text for text in texts] == [False, True, False, True]
    assert ["以下余白" in text for text in texts] == [False, True, False, True]
    # Four persons on the first sheet, two on the second; the options asked for are shown.
    assert f"{TAKA}橋次郎" in texts[0] and f"山{SAKI}三郎" not in texts[0]
    assert f"山{SAKI}三郎" in texts[1] and "SMITHJOHN" in texts[1]
    assert "本籍" in texts[0] and "筆頭者" in texts[0] and "987654321011" in texts[0]
    assert "世帯主" in texts[0] and "同居人" in texts[0]
    assert "住民票コード" not in texts[0]


def test_foreign_residents_birth_date_is_in_seireki(
    six_two_copies: RenderedCertificate, tmp_path: Path
) -> None:
    text = compact(page_texts(six_two_copies.pdf, tmp_path, 2)[1])
    assert "1985年3月4日" in text
    assert "昭和60年3月4日" not in text
    assert "アメリカ合衆国" in text
    assert "令和元年5月1日" in text  # a Japanese resident born on the first day of 令和


def test_individual_form_has_one_person_a_page(tmp_path: Path) -> None:
    rendered = render_certificate(juminhyo(3, layout=JuminhyoLayout.INDIVIDUAL, show_resident_code=True))
    assert rendered.pages == 3
    texts = [compact(text) for text in page_texts(rendered.pdf, tmp_path, 3)]
    assert [compact(CERTIFICATION) in text for text in texts] == [False, False, True]
    assert "（個人票）" in texts[0]
    assert f"{YOSHI}田太郎" in texts[0] and f"{YOSHI}田花子" in texts[1]
    assert "住民票コード12345678901" in texts[0]
    assert "20260421993417K01P010123/3" in texts[2]


def test_chosen_members_only(tmp_path: Path) -> None:
    rendered = render_certificate(juminhyo(4, member_ids=(4, 1)))
    [text] = [compact(t) for t in page_texts(rendered.pdf, tmp_path, 1)]
    assert f"{YOSHI}田太郎" in text and f"{TAKA}橋次郎" in text
    assert f"{YOSHI}田花子" not in text
    assert "この写しは、住民票の原本と相違ないことを証明する。" in text
    assert text.index(f"{YOSHI}田太郎") < text.index(f"{TAKA}橋次郎")  # household order


def test_names_use_the_mj_font(tmp_path: Path) -> None:
    rendered = render_certificate(juminhyo(4))
    path = tmp_path / "doc.pdf"
    path.write_bytes(rendered.pdf)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, check=True, text=True).stdout
    assert "IPAmjMincho" in fonts and "IPAexMincho" in fonts
    for line in fonts.splitlines()[2:]:
        assert line.split()[-5] == "yes", f"font not embedded: {line}"  # emb column


def test_only_the_characters_that_need_it_are_set_in_ipamj() -> None:
    assert needs_mj_font(f"{YOSHI}田　太郎") == [(YOSHI, True), ("田　太郎", False)]
    assert needs_mj_font("葛\U000e0100西") == [("葛\U000e0100", True), ("西", False)]  # MJ glyph by IVS
    assert needs_mj_font(f"山{SAKI}　{TAKA}橋") == [(f"山{SAKI}　{TAKA}橋", False)]  # IPAex has 﨑 and 髙
    assert needs_mj_font("") == []


def fonts_of(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "fonts.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdffonts", str(path)], capture_output=True, check=True, text=True).stdout


def test_names_without_rare_characters_do_not_embed_ipamj(tmp_path: Path) -> None:
    data = replace(juminhyo(1), persons=(PEOPLE[3],), household=replace(HOUSEHOLD, head_name=PEOPLE[3].name))
    rendered = render_certificate(data)
    assert "IPAmjMincho" not in fonts_of(rendered.pdf, tmp_path)
    [text] = [compact(t) for t in page_texts(rendered.pdf, tmp_path, 1)]
    assert f"{TAKA}橋次郎" in text and "高橋" not in text


def test_a_variation_sequence_is_set_in_ipamj(tmp_path: Path) -> None:
    person = replace(PEOPLE[0], name="葛\U000e0100西　一郎")
    data = replace(juminhyo(1), persons=(person,), household=replace(HOUSEHOLD, head_name=person.name))
    rendered = render_certificate(data)
    assert "IPAmjMincho" in fonts_of(rendered.pdf, tmp_path)
    [text] = [compact(t) for t in page_texts(rendered.pdf, tmp_path, 1)]
    assert "葛西一郎" in text.replace("\U000e0100", "")


def test_warm_caches_render_the_same_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Font subsets and images kept between WeasyPrint renders (app.printing.pdf) print the same
    pages as fresh ones: the second render reuses them, the third starts from an emptied image
    cache; and a certificate set on a frame from the cache prints as one on a frame laid out anew."""
    data = juminhyo(4, show_honseki=True)
    first = render_certificate_flowing(data)
    second = render_certificate_flowing(data)
    monkeypatch.setattr(pdf_module._ImageCache, "MAX_ENTRIES", 0)  # emptied after every render
    render_certificate_flowing(juminhyo(1))
    third = render_certificate_flowing(data)
    pages = [page_image(r.pdf, tmp_path, 1, dpi=100).tobytes() for r in (first, second, third)]
    assert pages[0] == pages[1] == pages[2]
    assert len(pdf_module._ImageCache.shared) == 0

    cached = render_certificate(data)
    builds = FRAMES.builds
    FRAMES.clear()
    fresh = render_certificate(data)
    assert FRAMES.builds == builds + 1
    assert cached.pdf == fresh.pdf


def test_the_reduced_user_agent_stylesheet_changes_no_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """app.printing.pdf drops WeasyPrint's user-agent rules for pseudo-elements of every element
    (::marker, ::footnote-call, …): the certificates lay out exactly as with the full stylesheet."""
    assert pdf_module._ua_stylesheet() is not None
    documents = [
        juminhyo(6, show_head_relationship=True, show_honseki=True, show_my_number=True),
        juminhyo(2, layout=JuminhyoLayout.INDIVIDUAL, show_resident_code=True),
        replace(inkan(), salt="s"),
        replace(tax(98_000, 65_000), salt="s"),
    ]

    def layout(pdf: bytes) -> list[str]:
        path = tmp_path / "layout.pdf"
        path.write_bytes(pdf)
        words = subprocess.run(
            ["pdftotext", "-bbox", str(path), "-"], capture_output=True, check=True, text=True
        ).stdout
        return [line for line in words.splitlines() if "<word" in line or "<page" in line]

    reduced = [layout(render_certificate_flowing(data).pdf) for data in documents]
    monkeypatch.setattr(pdf_module, "_ua_stylesheet", lambda: None)
    full = [layout(render_certificate_flowing(data).pdf) for data in documents]
    assert reduced == full
    assert all(len(words) > 20 for words in full)


def word_boxes(pdf: bytes, tmp_path: Path) -> list[tuple[int, str, float, float, float, float]]:
    """(page, word, x min, y min, x max, y max) of every word, from pdftotext."""
    path = tmp_path / "words.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(
        ["pdftotext", "-bbox", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout
    boxes: list[tuple[int, str, float, float, float, float]] = []
    for page, text in enumerate(listing.split("<page ")[1:], start=1):
        for x_min, y_min, x_max, y_max, word in re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', text
        ):
            boxes.append((page, html.unescape(word), float(x_min), float(y_min), float(x_max), float(y_max)))
    return sorted(boxes)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(
            lambda: juminhyo(
                6, copies=2, show_head_relationship=True, show_honseki=True, show_my_number=True
            ),
            id="juminhyo-6-persons-2-copies",
        ),
        pytest.param(
            lambda: juminhyo(2, layout=JuminhyoLayout.INDIVIDUAL, show_resident_code=True), id="individual"
        ),
        pytest.param(inkan, id="inkan"),
        pytest.param(lambda: tax(98_000, 65_000), id="tax"),
        pytest.param(lambda: tax(0, 0), id="non-taxable"),
    ],
)
def test_values_land_where_the_flowing_layout_puts_them(document: Any, tmp_path: Path) -> None:
    """A certificate set on its frame (app/printing/overlay.py) has the same words as the one
    WeasyPrint lays out whole, each within 0.5 pt of its place there."""
    data = replace(document(), salt="same")
    framed = word_boxes(render_certificate(data).pdf, tmp_path)
    flowing = word_boxes(render_certificate_flowing(data).pdf, tmp_path)
    assert [w[:2] for w in framed] == [w[:2] for w in flowing]
    for a, b in zip(framed, flowing, strict=True):
        assert max(abs(p - q) for p, q in zip(a[2:], b[2:], strict=True)) < 0.5, (a, b)


def test_a_long_value_wraps_inside_its_cell(tmp_path: Path) -> None:
    """A value wider than its cell gets a frame with as many lines for it (laid out by WeasyPrint,
    so the row grows as in the flowing layout): every character printed, none past the table."""
    address = (
        "東京都千代田区霞が関一丁目1番1号　霞が関コモンゲート西館二十階、青葉台ハイツ・スカイタワー3001号室"
    )
    data = replace(juminhyo(2), persons=(replace(PEOPLE[0], previous_address=address), PEOPLE[1]))
    builds = FRAMES.builds
    rendered = render_certificate(data)
    assert FRAMES.builds - builds <= 2  # the frame with one line a value, then the one it needs
    [text] = page_texts(rendered.pdf, tmp_path, 1)
    first_line, second_line = compact(address).split("ー3001")
    assert first_line + "ー" in compact(text) and "3001号室" in compact(text)  # the label sits between
    table_right = (210 - 14) / 25.4 * 72
    words = word_boxes(rendered.pdf, tmp_path)
    assert all(word[4] <= table_right + 0.5 for word in words if word[5] < 700), "a word runs past the table"
    lines = [word for word in words if word[1].startswith(("霞が関", "東京都")) or "号室" in word[1]]
    assert len({round(word[5]) for word in lines}) >= 2  # on more than one line
    again = render_certificate(replace(data, serial_start=99))
    assert FRAMES.builds - builds <= 2 and again.pages == 1  # the same structure: no new frame


def test_the_same_structure_shares_one_frame_across_residents_and_days(tmp_path: Path) -> None:
    render_certificate(juminhyo(2))
    builds = FRAMES.builds
    other = replace(
        juminhyo(2),
        persons=(
            replace(PEOPLE[0], name="吉田　一", birth_date=date(1950, 1, 2)),
            replace(PEOPLE[1], name="髙橋　二三", former_surname="佐藤"),
        ),
        issued_at=ISSUED + timedelta(days=40),
        serial_start=500,
    )
    rendered = render_certificate(other)
    assert FRAMES.builds == builds  # names, dates and numbers are values, not frame
    [text] = [compact(t) for t in page_texts(rendered.pdf, tmp_path, 1)]
    assert "吉田一" in text and "令和8年5月31日" in text and "20260531993417K01P015001/1" in text


def test_line_breaking_keeps_closing_marks_and_latin_words() -> None:
    from app.printing.overlay import break_lines

    def shaped(text: str) -> list[tuple[str, int, int, float]]:
        return [(char, 0, 1, 10.0) for char in text]

    lines = break_lines(shaped("あいうえ、かきく"), lambda i: 40.0)  # 4 characters a line
    assert ["".join(c[0] for c in line) for line in lines] == ["あいう", "え、かき", "く"]
    lines = break_lines(shaped("SMITH JOHNSON"), lambda i: 80.0)
    assert ["".join(c[0] for c in line) for line in lines] == ["SMITH", "JOHNSON"]


def test_content_that_does_not_fit_fails_instead_of_spilling() -> None:
    long = replace(PEOPLE[0], previous_address="東京都千代田区霞が関一丁目1番1号" * 40)
    data = replace(juminhyo(4, show_honseki=True, show_my_number=True), persons=(long, *PEOPLE[1:4]))
    with pytest.raises(PdfLayoutError):
        render_certificate(data)


# --- QR codes and the document hash -------------------------------------------------------------------


def test_every_page_has_a_qr_code_with_no_personal_data(
    six_two_copies: RenderedCertificate, tmp_path: Path
) -> None:
    rendered = six_two_copies
    for page, (number, url) in enumerate(
        zip(rendered.issue_numbers, rendered.verification_urls, strict=True), start=1
    ):
        decoded = [result.text for result in zxingcpp.read_barcodes(page_image(rendered.pdf, tmp_path, page))]
        assert decoded == [url]
        assert re.fullmatch(r"https://aobadai\.example\.jp/verify/[0-9A-Za-z_-]+\?h=[0-9a-f]{16}", url)
        ref = parse_verification_url(url)
        assert ref.issue_number == number
        assert ref.hash_prefix == rendered.sha256[:16]


def test_document_hash_is_computed_from_the_content() -> None:
    data = juminhyo(3)
    assert document_hash(data) == render_certificate(data).sha256 == document_hash(juminhyo(3))
    renamed = replace(data, persons=(replace(PEOPLE[0], name="吉田　太郎"), *PEOPLE[1:3]))
    assert document_hash(renamed) != document_hash(data)  # 𠮷 vs 吉 is a different certificate
    assert document_hash(replace(data, salt="other")) != document_hash(data)
    assert document_hash(replace(data, serial_start=13)) != document_hash(data)
    assert len(juminhyo(3).salt) and len(replace(data, salt="x").salt)


# --- 公印 ------------------------------------------------------------------------------------------------


def test_seal_prints_black_and_at_most_25_mm(tmp_path: Path) -> None:
    black = Image.open(io.BytesIO(blacken_seal(SEAL_PNG)))
    assert black.mode == "LA"
    luminance, alpha = black.split()
    assert luminance.getextrema() == (0, 0)  # only black ink
    assert alpha.getextrema()[1] == 255

    rendered = render_certificate(juminhyo(1))
    path = tmp_path / "doc.pdf"
    path.write_bytes(rendered.pdf)
    listing = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, check=True, text=True
    ).stdout
    seal_rows = [
        row.split()
        for row in listing.splitlines()[2:]
        if row.split()[2] == "image" and row.split()[3] == "300"
    ]
    assert seal_rows, listing
    for row in seal_rows:
        width_px, x_ppi = int(row[3]), float(row[12])
        assert width_px / x_ppi * 25.4 <= 25.0


# --- 印鑑登録証明書 and tax certificates ---------------------------------------------------------------------


def test_seal_registration_certificate(tmp_path: Path) -> None:
    rendered = render_certificate(inkan())
    [text] = [compact(t) for t in page_texts(rendered.pdf, tmp_path, 1)]
    assert "印鑑登録証明書" in text
    assert "A-000123" in text
    assert f"山{SAKI}三郎" in text
    assert "令和元年5月1日" in text
    assert compact(ADDRESS) in text
    assert "この写しは、登録されている印影と相違ないことを証明する。" in text
    assert "発行番号20260421993417K01P010401/1" in text


def test_tax_certificate_titles_by_amount(tmp_path: Path) -> None:
    taxable = render_certificate(tax(98_000, 65_000))
    [text] = [compact(t) for t in page_texts(taxable.pdf, tmp_path, 1)]
    assert "課税証明書" in text and "非課税証明書" not in text
    assert "令和8年度（令和7年中の所得）" in text
    assert "3,456,000円" in text and "163,000円" in text
    assert "町民税" in text and "県民税" in text
    assert f"{TAKA}橋次郎" in text and "平成元年1月7日" not in text and "昭和64年1月7日" in text
    assert "上記のとおり証明する。" in text
    assert "発行番号20260421993417K01007" in text  # no printer: the part is blank

    exempt = render_certificate(tax(0, 0))
    [text] = [compact(t) for t in page_texts(exempt.pdf, tmp_path, 1)]
    assert "非課税証明書" in text
    assert "課税されていません" in text


# --- Building from the database models and signing -----------------------------------------------------------


def test_from_models(tmp_path: Path) -> None:
    town = Municipality(
        code="993417", name="青葉台町", prefecture="架空県", mayor_title="町長", mayor_name="緑川　晴彦"
    )
    household = Household(id=1, household_number="0001", head_name=f"{TAKA}橋　一", address=ADDRESS)
    resident = Resident(
        id=7,
        atena_number="0000007",
        household_id=1,
        relationship="世帯主",
        family_name=f"{TAKA}橋",
        given_name="一",
        family_name_kana="タカハシ",
        given_name_kana="ハジメ",
        birth_date=date(1960, 2, 29),
        sex=Sex.MALE,
        address=ADDRESS,
    )
    data = CertificateData(
        certificate_type=CertificateType.JUMINHYO,
        municipality=MunicipalityInfo.from_model(town, seal_png=SEAL_PNG),
        issued_at=datetime(2026, 4, 21, 1, 0, tzinfo=UTC),
        terminal_code="K01",
        printer_code="P01",
        serial_start=1,
        verify_base_url=VERIFY,
        persons=(PersonRecord.from_resident(resident),),
        household=HouseholdRecord.from_model(household),
    )
    rendered = render_certificate(data)
    [text] = [compact(t) for t in page_texts(rendered.pdf, tmp_path, 1)]
    assert f"{TAKA}橋一" in text and "昭和35年2月29日" in text
    seal = SealRecord.from_model(
        SealRegistration(resident_id=7, registration_number="B-1", registered_on=date(2020, 1, 1)), SEAL_PNG
    )
    assert seal.registration_number == "B-1"
    record = TaxRecordData.from_model(
        TaxRecord(resident_id=7, fiscal_year=2026, total_income=0, municipal_tax=0, prefectural_tax=0)
    )
    assert record.kind.value == "non_taxable"


def test_pades_signature_validates_against_the_demo_root(tmp_path: Path) -> None:
    key = DemoSigningKey.load_or_create(tmp_path / "keys")
    assert DemoSigningKey.load_or_create(tmp_path / "keys") == key  # cached in the folder
    assert (tmp_path / "keys" / "demo-signer-key.pem").stat().st_mode & 0o077 == 0

    rendered = render_certificate(juminhyo(3))
    signed = sign_pdf(rendered.pdf, key.signer_config(location="青葉台町役場"))
    [check] = validate_signed_pdf(signed, [key.root_pem])
    assert check.ok, check
    assert "架空県青葉台町長" in check.signer_subject

    [untrusted] = validate_signed_pdf(signed, [DemoSigningKey.create().root_pem])
    assert untrusted.intact and not untrusted.trusted

    assert signed.startswith(rendered.pdf)  # an incremental update
    position = signed.index(b"/Location")  # inside the signed byte range (the update)
    tampered = signed[:position] + b"/Locatiom" + signed[position + 9 :]
    [broken] = validate_signed_pdf(tampered, [key.root_pem])
    assert not broken.intact and not broken.ok


def test_signer_from_settings(tmp_path: Path) -> None:
    demo = signer_from_settings(Settings(data_dir=tmp_path))
    assert (tmp_path / "signing" / "demo-signer.pem").is_file()
    assert signer_from_settings(Settings(data_dir=tmp_path)) == demo  # made once, then reused

    own = DemoSigningKey.create("架空県青葉台町長")
    files = {name: tmp_path / name for name in ("key.pem", "cert.pem", "root.pem")}
    for (_, path), pem in zip(files.items(), (own.key_pem, own.cert_pem, own.root_pem), strict=True):
        path.write_bytes(pem)
    configured = signer_from_settings(
        Settings(
            data_dir=tmp_path,
            signing_key_file=str(files["key.pem"]),
            signing_cert_file=str(files["cert.pem"]),
            signing_chain_files=str(files["root.pem"]),
        )
    )
    assert configured.cert_pem == own.cert_pem and configured.chain_pem == (own.root_pem,)
    [check] = validate_signed_pdf(sign_pdf(render_certificate(juminhyo(1)).pdf, configured), [own.root_pem])
    assert check.ok
    with pytest.raises(ValueError):
        signer_from_settings(Settings(data_dir=tmp_path, signing_key_file=str(files["key.pem"])))
