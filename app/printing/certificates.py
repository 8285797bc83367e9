"""Certificate PDFs: 住民票の写し (世帯連記式 / 個人票), 印鑑登録証明書, 課税・非課税証明書.

`render_certificate(data)` lays out every copy of one certificate in one PDF (templates in
print/certificates/). Each copy has its own 発行番号 (serial_start, serial_start+1, …) printed with
its page on every sheet, a verification QR code on every sheet, and the 認証文 with the mayor's
name and 公印 once, on its last sheet.

The document hash (`document_hash`) is SHA-256 over the certificate's content as canonical JSON
(sorted keys, UTF-8, no spaces): type, municipality, issue time, reception number, the copies'
issue numbers, the 住民票 options and every printed field of every person, the household, seal
or tax row (images by their SHA-256), plus a random salt. It is computed from the data before
layout, so the QR codes that carry its prefix can be placed on the pages; the PDF bytes are not
hashed (they change when signed). Keep the salt with the issue record to recompute the hash
later; without it the hash says nothing about the person, even to someone who knows their data.

Example, from database rows::

    data = CertificateData(
        certificate_type=CertificateType.JUMINHYO,
        municipality=MunicipalityInfo.from_model(town, seal_png=store.get(town.seal_image_key)),
        issued_at=now, terminal_code="K01", printer_code="P01", serial_start=12,
        verify_base_url="https://aobadai.example.jp",
        household=HouseholdRecord.from_model(household),
        persons=tuple(PersonRecord.from_resident(r) for r in members_in_household_order),
        juminhyo_options=JuminhyoOptions(show_head_relationship=True),
        copies=2, reception_number="128",
    )
    rendered = render_certificate(data)  # rendered.pdf, .pages, .issue_numbers, .sha256

`render_certificate` sets the values on the certificate's frame (app/printing/overlay.py): the
template filled without its values, laid out by WeasyPrint once for every certificate of the same
structure and kept (`FRAMES`). A typical one-page 住民票 takes ~9 ms; the first of a structure
~200 ms (bench/bench_certificate_pdf.py). `render_certificate_flowing` lays the same certificate
out whole, as a reference. In the templates, every value goes through `f.text(...)` or
`f.image(...)`; whatever does not is part of the frame.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import math
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import jinja2
from PIL import Image, ImageDraw, ImageFont, ImageOps

from app.domain.certificates import (
    CertificateType,
    JuminhyoLayout,
    JuminhyoOptions,
    TaxCertificateKind,
    certification_sentence,
    copy_serials,
    fiscal_year_label,
    income_year_label,
    issue_number,
    juminhyo_sheets,
    select_members,
    tax_certificate_kind,
)
from app.domain.registry import Sex
from app.domain.wareki import format_date_for_resident, format_seireki, format_wareki
from app.models.org import Municipality
from app.models.registry import Household, Resident, SealRegistration, TaxRecord
from app.printing.overlay import (
    FieldSink,
    Frame,
    FrameCache,
    ImageValue,
    QrValue,
    build_frame,
    compose,
    lines_needed,
    text_layouts,
)
from app.printing.pdf import needs_mj_font, render_frame, render_pdf
from app.printing.seal import blacken_seal, demo_seal_text, font_file
from app.printing.verify import verification_url

__all__ = [
    "TEMPLATE_DIR",
    "CertificateData",
    "HouseholdRecord",
    "MunicipalityInfo",
    "PersonRecord",
    "PreparedCertificate",
    "RenderedCertificate",
    "SealRecord",
    "TaxRecordData",
    "document_hash",
    "pages_per_copy",
    "prepare_certificate",
    "render_certificate",
    "render_certificate_flowing",
]

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "print" / "certificates"
STYLESHEET = TEMPLATE_DIR / "certificate.css"
JST = timezone(timedelta(hours=9), "JST")
MAX_COPIES = 20
HASH_VERSION = 1


# --- What a certificate is made of ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MunicipalityInfo:
    code: str
    name: str
    mayor_name: str
    mayor_title: str = "町長"
    prefecture: str = ""
    seal_png: bytes = b""  # the 公印 image, any colour; printed black
    seal_note: str = ""  # a fixed phrase such as 「この印は黒色です」 (標準仕様書 5.6), if wanted

    @classmethod
    def from_model(
        cls, municipality: Municipality, seal_png: bytes = b"", seal_note: str = ""
    ) -> MunicipalityInfo:
        return cls(
            code=municipality.code,
            name=municipality.name,
            mayor_name=municipality.mayor_name,
            mayor_title=municipality.mayor_title,
            prefecture=municipality.prefecture,
            seal_png=seal_png,
            seal_note=seal_note,
        )

    @property
    def office(self) -> str:
        """「架空県青葉台町長」: 都道府県名 with the 職名, as the standard asks (5.6)."""
        return self.prefecture + demo_seal_text(self.name, self.mayor_title).removesuffix("之印")


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One person's printable entries, copied from the resident record. Names are kept as given,
    never normalised (﨑 must stay 﨑)."""

    name: str
    birth_date: date | None
    sex: Sex
    resident_id: int | None = None
    name_kana: str = ""
    birth_date_text: str = ""  # the record's own text (「昭和20年頃」); printed when present
    nationality: str = ""  # empty for Japanese nationals
    alias: str = ""  # 通称
    former_surname: str = ""  # 旧氏
    relationship: str = ""  # 続柄
    address: str = ""
    address_katagaki: str = ""
    honseki: str = ""
    hittousha: str = ""
    became_resident_on: date | None = None
    became_resident_text: str = ""
    address_set_on: date | None = None
    address_set_text: str = ""
    previous_address: str = ""
    resident_code: str = ""  # 住民票コード
    my_number: str = ""  # 個人番号: not in the mirrored record; the caller supplies it when asked
    residence: str = ""  # foreign residents: 30条の45区分, 在留資格, 満了日

    @classmethod
    def from_resident(cls, resident: Resident, my_number: str = "") -> PersonRecord:
        extra = resident.extra or {}
        residence = ""
        if resident.is_foreign:
            parts = [str(extra.get("category", "")), str(extra.get("residence_status", ""))]
            until = extra.get("period_of_stay_until")
            if until:
                try:
                    parts.append(f"満了日 {format_seireki(date.fromisoformat(str(until)))}")
                except ValueError:
                    parts.append(f"満了日 {until}")
            residence = "　".join(part for part in parts if part)
        return cls(
            name=resident.full_name,
            birth_date=resident.birth_date,
            sex=resident.sex,
            resident_id=resident.id,
            name_kana=resident.full_name_kana,
            birth_date_text=resident.birth_date_text,
            nationality=resident.nationality,
            alias=resident.alias,
            former_surname=resident.former_surname,
            relationship=resident.relationship,
            address=resident.address,
            address_katagaki=resident.address_katagaki,
            honseki=resident.honseki,
            hittousha=resident.hittousha,
            became_resident_on=resident.became_resident_on,
            became_resident_text=resident.became_resident_text,
            address_set_on=resident.address_set_on,
            address_set_text=resident.address_set_text,
            previous_address=resident.previous_address,
            resident_code=resident.resident_code,
            my_number=my_number,
            residence=residence,
        )

    @property
    def foreign(self) -> bool:
        return bool(self.nationality)

    @property
    def sex_label(self) -> str:
        return "男" if self.sex == Sex.MALE else "女"

    @property
    def birth_display(self) -> str:
        """西暦 for foreign residents, 和暦 otherwise; the record's own text wins when there is one."""
        if self.birth_date_text:
            return self.birth_date_text
        return format_date_for_resident(self.birth_date, self.foreign) if self.birth_date else ""

    @property
    def became_resident_display(self) -> str:
        return _dated(self.became_resident_on, self.became_resident_text)

    @property
    def address_set_display(self) -> str:
        return _dated(self.address_set_on, self.address_set_text)

    @property
    def residence_display(self) -> str:
        return self.residence


def _dated(day: date | None, text: str) -> str:
    if text:
        return text
    return format_wareki(day) if day else ""


@dataclass(frozen=True, slots=True)
class HouseholdRecord:
    household_number: str
    head_name: str
    address: str
    address_katagaki: str = ""
    postal_code: str = ""

    @classmethod
    def from_model(cls, household: Household) -> HouseholdRecord:
        return cls(
            household_number=household.household_number,
            head_name=household.head_name,
            address=household.address,
            address_katagaki=household.address_katagaki,
            postal_code=household.postal_code,
        )


@dataclass(frozen=True, slots=True)
class SealRecord:
    registration_number: str
    registered_on: date
    impression_png: bytes  # the registered 印影, printed as scanned (not blackened)

    @classmethod
    def from_model(cls, registration: SealRegistration, impression_png: bytes) -> SealRecord:
        return cls(registration.registration_number, registration.registered_on, impression_png)


@dataclass(frozen=True, slots=True)
class TaxRecordData:
    fiscal_year: int  # 年度 (Gregorian year it starts in); income is of the year before
    total_income: int
    taxable_income: int
    municipal_tax: int
    prefectural_tax: int
    dependants: int = 0

    @classmethod
    def from_model(cls, record: TaxRecord) -> TaxRecordData:
        return cls(
            fiscal_year=record.fiscal_year,
            total_income=record.total_income,
            taxable_income=record.taxable_income,
            municipal_tax=record.municipal_tax,
            prefectural_tax=record.prefectural_tax,
            dependants=record.dependants,
        )

    @property
    def kind(self) -> TaxCertificateKind:
        return tax_certificate_kind(self.municipal_tax, self.prefectural_tax)


def _new_salt() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class CertificateData:
    """Everything one issue prints: the certificate, its copies and where it is printed.

    `persons`: for a 住民票, the household's members in household order (the options choose
    which are printed; `JuminhyoOptions.member_ids` None means all of them, so pass the whole
    household then); for 印鑑 and tax certificates, the one person. `serial_start` is the first
    copy's serial; the copies use `copies` consecutive serials.
    """

    certificate_type: CertificateType
    municipality: MunicipalityInfo
    issued_at: datetime  # naive times are taken as JST
    terminal_code: str
    printer_code: str
    serial_start: int
    verify_base_url: str
    persons: tuple[PersonRecord, ...]
    household: HouseholdRecord | None = None
    juminhyo_options: JuminhyoOptions = field(default_factory=JuminhyoOptions)
    seal: SealRecord | None = None
    tax: TaxRecordData | None = None
    copies: int = 1
    reception_number: str = ""
    salt: str = field(default_factory=_new_salt)

    def __post_init__(self) -> None:
        if not 1 <= self.copies <= MAX_COPIES:
            raise ValueError(f"copies must be 1..{MAX_COPIES}")
        if not self.persons:
            raise ValueError("a certificate needs at least one person")
        kind = self.certificate_type
        if kind is CertificateType.JUMINHYO and self.household is None:
            raise ValueError("a 住民票の写し needs the household")
        if kind is CertificateType.INKAN and self.seal is None:
            raise ValueError("a 印鑑登録証明書 needs the seal registration")
        if kind is CertificateType.TAX and self.tax is None:
            raise ValueError("a tax certificate needs the tax record")
        if kind is not CertificateType.JUMINHYO and len(self.persons) != 1:
            raise ValueError(f"a {kind.label_ja} is for exactly one person")
        if not self.municipality.seal_png:
            raise ValueError("the municipality has no 公印 image")

    @property
    def issued_at_jst(self) -> datetime:
        if self.issued_at.tzinfo is None:
            return self.issued_at.replace(tzinfo=JST)
        return self.issued_at.astimezone(JST)

    @property
    def issue_day(self) -> date:
        return self.issued_at_jst.date()

    def printed_persons(self) -> list[PersonRecord]:
        if self.certificate_type is CertificateType.JUMINHYO:
            return select_members(self.juminhyo_options, self.persons)
        return list(self.persons)

    def copy_keys(self) -> list[str]:
        """Each copy's issue number without the page part."""
        pages = pages_per_copy(self)
        return [
            self._issue_number(serial, 1, pages).rsplit(" ", 1)[0]
            for serial in copy_serials(self.serial_start, self.copies)
        ]

    def _issue_number(self, serial: int, page: int, pages: int) -> str:
        return issue_number(
            self.issue_day,
            self.municipality.code,
            self.terminal_code,
            self.printer_code,
            serial,
            page,
            pages,
        )


@dataclass(frozen=True, slots=True)
class RenderedCertificate:
    pdf: bytes
    pages: int  # in the whole PDF: copies × pages a copy
    issue_numbers: list[str]  # one per page, in page order
    sha256: str  # the document hash (see `document_hash`), the same in every QR code
    pages_per_copy: int = 1
    verification_urls: list[str] = field(default_factory=list)  # one per page

    @property
    def pdf_sha256(self) -> str:
        """SHA-256 of the PDF file itself (changes when the PDF is signed)."""
        return hashlib.sha256(self.pdf).hexdigest()


def _sheets_of(data: CertificateData) -> list[list[PersonRecord]]:
    persons = data.printed_persons()
    if data.certificate_type is CertificateType.JUMINHYO:
        return juminhyo_sheets(persons, data.juminhyo_options.layout)
    return [persons]


def pages_per_copy(data: CertificateData) -> int:
    return len(_sheets_of(data))


# --- The document hash ------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def document_hash(data: CertificateData) -> str:
    """SHA-256 (hex) of the certificate's content as canonical JSON; see the module docstring."""
    content = {
        "v": HASH_VERSION,
        "salt": data.salt,
        "type": data.certificate_type.value,
        "municipality": asdict(data.municipality),
        "issued_at": data.issued_at_jst.isoformat(),
        "reception_number": data.reception_number,
        "copies": data.copy_keys(),
        "pages_per_copy": pages_per_copy(data),
        "persons": [asdict(person) for person in data.printed_persons()],
        "household": asdict(data.household) if data.household else None,
        "options": asdict(data.juminhyo_options)
        if data.certificate_type is CertificateType.JUMINHYO
        else None,
        "seal": asdict(data.seal) if data.seal else None,
        "tax": asdict(data.tax) if data.tax else None,
    }
    canonical = json.dumps(_jsonable(content), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- Layout -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sheet:
    issue_number: str
    qr: QrValue
    persons: tuple[PersonRecord, ...]
    first_index: int  # persons before this sheet in the copy (for the 1, 2, 3 … numbering)
    last_of_copy: bool


@dataclass(frozen=True, slots=True)
class _Certification:
    sentence: str
    date: str
    office: str
    mayor_name: str
    seal: str
    note: str


@dataclass(frozen=True, slots=True)
class _TaxView:
    data: TaxRecordData
    municipality: MunicipalityInfo

    def __getattr__(self, name: str) -> Any:
        return getattr(self.data, name)

    @property
    def kind(self) -> TaxCertificateKind:
        return self.data.kind

    @property
    def document_title(self) -> str:
        return self.data.kind.document_title

    @property
    def fiscal_year_label(self) -> str:
        return fiscal_year_label(self.data.fiscal_year)

    @property
    def income_year_label(self) -> str:
        return income_year_label(self.data.fiscal_year)

    @property
    def municipal_tax_label(self) -> str:
        kind = self.municipality.name[-1:] or "市"
        return "特別区民税" if kind == "区" else f"{kind}民税"

    @property
    def prefectural_tax_label(self) -> str:
        kind = self.municipality.prefecture[-1:] or "県"
        return f"{kind}民税"


def _yen(amount: int) -> str:
    return f"{amount:,}円"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yen"] = _yen
    env.filters["mj_runs"] = needs_mj_font
    return env


_TEMPLATES: dict[tuple[CertificateType, JuminhyoLayout | None], str] = {
    (CertificateType.JUMINHYO, JuminhyoLayout.HOUSEHOLD): "juminhyo_household.html",
    (CertificateType.JUMINHYO, JuminhyoLayout.INDIVIDUAL): "juminhyo_individual.html",
    (CertificateType.INKAN, None): "inkan.html",
    (CertificateType.TAX, None): "tax.html",
}


# Whitespace-only text between tags: WeasyPrint would parse it and make (then drop) boxes for it.
# In these templates it never prints (it lies between blocks or table parts, or starts a line), so
# removing it changes nothing on the page. ASCII whitespace only: U+3000 in names is content.
_BETWEEN_TAGS = re.compile(r">[ \t\r\n]+<")


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """The certificate as HTML, before layout: the flowing document (every value in place), as
    `prepare_certificate` makes it for other renderers and for comparison."""

    html: str
    stylesheets: tuple[Path | str, ...]
    issue_numbers: list[str]
    verification_urls: list[str]
    sha256: str
    pages_per_copy: int
    title: str

    @property
    def pages(self) -> int:
        return len(self.issue_numbers)


@dataclass(frozen=True, slots=True)
class _Filling:
    """A certificate's template and what fills it, but for the values' sink."""

    template: jinja2.Template
    context: dict[str, Any]
    issue_numbers: list[str]
    urls: list[str]
    sha256: str
    pages_per_copy: int
    title: str

    def html(self, sink: FieldSink) -> str:
        return _BETWEEN_TAGS.sub("><", self.template.render(f=sink, **self.context))


def _filling(data: CertificateData) -> _Filling:
    """Number the pages, hash the content and gather what the template prints."""
    sheets_per_copy = _sheets_of(data)
    pages = len(sheets_per_copy)
    digest = document_hash(data)
    kind = data.certificate_type

    sheets: list[_Sheet] = []
    issue_numbers: list[str] = []
    urls: list[str] = []
    for serial in copy_serials(data.serial_start, data.copies):
        first_index = 0
        for page, persons in enumerate(sheets_per_copy, start=1):
            number = data._issue_number(serial, page, pages)
            url = verification_url(data.verify_base_url, number, digest)
            issue_numbers.append(number)
            urls.append(url)
            sheets.append(_Sheet(number, QrValue(url), tuple(persons), first_index, page == pages))
            first_index += len(persons)

    options = data.juminhyo_options
    municipality = data.municipality
    certification = _Certification(
        sentence=certification_sentence(kind, whole_household=options.whole_household),
        date=format_wareki(data.issue_day),
        office=municipality.office,
        mayor_name=f"　{municipality.mayor_name}",
        seal=_seal_uri(municipality.seal_png),
        note=municipality.seal_note,
    )
    layout = options.layout if kind is CertificateType.JUMINHYO else None
    context = {
        "title": kind.label_ja,
        "layout_class": "individual" if layout is JuminhyoLayout.INDIVIDUAL else "",
        "sheets": sheets,
        "reception_number": data.reception_number,
        "certification": certification,
        "options": options,
        "household": data.household,
        "seal": data.seal,
        "seal_impression": ImageValue(data.seal.impression_png) if data.seal else None,
        "tax": _TaxView(data.tax, municipality) if data.tax else None,
    }
    return _Filling(
        template=_environment().get_template(_TEMPLATES[(kind, layout)]),
        context=context,
        issue_numbers=issue_numbers,
        urls=urls,
        sha256=digest,
        pages_per_copy=pages,
        title=kind.label_ja,
    )


@functools.lru_cache(maxsize=8)
def _seal_uri(seal_png: bytes) -> str:
    return _png_data_uri(blacken_seal(seal_png))


def prepare_certificate(data: CertificateData) -> PreparedCertificate:
    """The flowing document: the template with every value in place (see the module docstring)."""
    filling = _filling(data)
    return PreparedCertificate(
        html=filling.html(FieldSink(frame=False)),
        stylesheets=(STYLESHEET, background_css()),
        issue_numbers=filling.issue_numbers,
        verification_urls=filling.urls,
        sha256=filling.sha256,
        pages_per_copy=filling.pages_per_copy,
        title=filling.title,
    )


FRAMES = FrameCache()


def _frame(html: str, pages: int) -> Frame:
    def build() -> Frame:
        pdf, places = render_frame(html, stylesheets=(STYLESHEET, background_css()), expected_pages=pages)
        return build_frame(pdf, places)

    return FRAMES.get(html, build)


def render_certificate(data: CertificateData) -> RenderedCertificate:
    """Every copy of `data` in one PDF: the certificate's frame (laid out by WeasyPrint once for
    all certificates of the same structure, app/printing/overlay.py) with the values set on it.

    Raises PdfLayoutError when a sheet's content does not fit on its page (nothing is cut off).
    """
    filling = _filling(data)
    pages = len(filling.issue_numbers)
    sink = FieldSink(frame=True)
    frame = _frame(filling.html(sink), pages)
    layouts = text_layouts(sink.values, frame.places)
    more = lines_needed(layouts, frame.places)
    if more:  # values that wrap: the frame with that many lines for them (same column widths)
        sink = FieldSink(frame=True, lines=more)
        frame = _frame(filling.html(sink), pages)
        layouts = text_layouts(sink.values, frame.places)
    pdf = compose(frame, sink.values, layouts=layouts, title=filling.title)
    return RenderedCertificate(
        pdf=pdf,
        pages=pages,
        issue_numbers=filling.issue_numbers,
        sha256=filling.sha256,
        pages_per_copy=filling.pages_per_copy,
        verification_urls=filling.urls,
    )


def render_certificate_flowing(data: CertificateData) -> RenderedCertificate:
    """The same certificate laid out whole by WeasyPrint (for comparison: tests and benchmarks)."""
    prepared = prepare_certificate(data)
    rendered = render_pdf(
        prepared.html,
        stylesheets=prepared.stylesheets,
        expected_pages=prepared.pages,
        title=prepared.title,
    )
    return RenderedCertificate(
        pdf=rendered.pdf,
        pages=rendered.pages,
        issue_numbers=prepared.issue_numbers,
        sha256=prepared.sha256,
        pages_per_copy=prepared.pages_per_copy,
        verification_urls=prepared.verification_urls,
    )


# --- Background: 地紋 with the latent 「複写」 (けん制文字) ------------------------------------------

# Two dot screens of about the same tint (~8 % cover), so the original looks evenly tinted: fine dots
# (0.14 mm on a 0.42 mm grid) everywhere except inside the word, coarse dots (0.34 mm on a 1.05 mm
# grid) inside it. A copier does not reproduce dots that fine and they fade, while the coarse dots
# survive, so 「複写」 stands out on a photocopy. The word's shape is a mask image, one pixel per
# coarse cell, so it is not text: it never shows up in copied or extracted text. This shows the
# principle; production paper uses a printer-tuned pattern or pre-printed security paper.
_TINT = "#8fa3b8"
_FINE_PITCH, _FINE_RADIUS = 0.42, 0.07  # mm
_COARSE_PITCH, _COARSE_RADIUS = 1.05, 0.17  # mm
_TILE = 2.1  # mm; holds 5×5 fine or 2×2 coarse dots
_PAGE_MM = (210.0, 297.0)
_WORD = "複写"
_WORD_SIZE_MM = 34.0
_WORD_ANGLE = 24.0


def screen_coverage(pitch: float, radius: float) -> float:
    """The share of paper a dot screen covers."""
    return math.pi * radius * radius / (pitch * pitch)


def _dots(pitch: float, radius: float) -> str:
    count = round(_TILE / pitch)
    return "".join(
        f'<circle cx="{pitch * (i + 0.5):.3f}" cy="{pitch * (j + 0.5):.3f}" r="{radius}"/>'
        for i in range(count)
        for j in range(count)
    )


@functools.cache
def latent_word_mask() -> Image.Image:
    """Where the coarse screen goes: white cells inside 「複写」, repeated and turned across the page."""
    cells = (math.ceil(_PAGE_MM[0] / _COARSE_PITCH), math.ceil(_PAGE_MM[1] / _COARSE_PITCH))
    scale = 6  # sub-cells a cell, for deciding which cells are mostly inside a stroke
    per_mm = scale / _COARSE_PITCH
    width, height = cells[0] * scale, cells[1] * scale
    canvas = Image.new("L", (width * 2, height * 2), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(str(font_file("IPAexGothic")), size=round(_WORD_SIZE_MM * per_mm))
    stroke = round(0.8 * per_mm)
    step_x, step_y = 86 * per_mm, 58 * per_mm
    for row in range(-2, 9):
        for column in range(-2, 5):
            x = width / 2 + column * step_x + (row % 2) * step_x / 2
            y = height / 2 + row * step_y
            draw.text((x, y), _WORD, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    turned = canvas.rotate(_WORD_ANGLE, resample=Image.Resampling.BICUBIC, center=(width, height))
    page = turned.crop((width // 2, height // 2, width // 2 + width, height // 2 + height))
    return page.resize(cells, Image.Resampling.BOX).point(lambda value: 255 if value >= 96 else 0)


def _mask_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return _png_data_uri(buffer.getvalue())


@functools.cache
def background_css() -> str:
    """The stylesheet that paints .ground, the page-sized box under each sheet (made once)."""
    return f'.ground {{ background: url("{background_uri()}") no-repeat 0 0 / {_PAGE_MM[0]}mm {_PAGE_MM[1]}mm; }}'


@functools.cache
def background_uri() -> str:
    """The sheet background as an SVG data URI (generated once per process).

    It is painted on a box under each sheet rather than as the `@page` background: WeasyPrint (70)
    shifts SVG masks in page backgrounds by the page margins.
    """
    mask = latent_word_mask()
    page_w, page_h = _PAGE_MM
    mask_w, mask_h = mask.width * _COARSE_PITCH, mask.height * _COARSE_PITCH
    image = (
        f'<image x="0" y="0" width="{mask_w:.2f}" height="{mask_h:.2f}" preserveAspectRatio="none" '
        'style="image-rendering:pixelated" href="{href}"/>'
    )
    inside = image.replace("{href}", _mask_uri(mask))
    outside = image.replace("{href}", _mask_uri(ImageOps.invert(mask)))
    masks = "".join(
        f'<mask id="{name}" maskUnits="userSpaceOnUse" x="0" y="0" width="{page_w}" height="{page_h}">'
        f"{content}</mask>"
        for name, content in (("inside", inside), ("outside", outside))
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{page_w}mm" height="{page_h}mm" '
        f'viewBox="0 0 {page_w} {page_h}"><defs>'
        f'<pattern id="fine" patternUnits="userSpaceOnUse" width="{_TILE}" height="{_TILE}">'
        f'<g fill="{_TINT}">{_dots(_FINE_PITCH, _FINE_RADIUS)}</g></pattern>'
        f'<pattern id="coarse" patternUnits="userSpaceOnUse" width="{_TILE}" height="{_TILE}">'
        f'<g fill="{_TINT}">{_dots(_COARSE_PITCH, _COARSE_RADIUS)}</g></pattern>'
        f"{masks}</defs>"
        f'<rect width="{page_w}" height="{page_h}" fill="url(#fine)" mask="url(#outside)"/>'
        f'<rect width="{page_w}" height="{page_h}" fill="url(#coarse)" mask="url(#inside)"/>'
        "</svg>"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
