"""Pre-filled application forms (書かない窓口): the department forms, the 手続き案内票 and the 申請内容票
as one PDF, made from a case (`app.domain.cases.CaseData`).

`render_forms(case)` prints the printable forms the case's procedures name, then the 申請内容票 and
the 手続き案内票, in one HTML document laid out by WeasyPrint (app.printing.pdf keeps fonts,
stylesheets and caches warm between renders). Templates live in print/forms/, one a form
(`PRINTABLE_FORMS`); each gets the same view of the case (`CaseView`: every value a display
string, empty when the case lacks it, never None) plus the sheets of that form (`FormSheet`: the
persons printed on each page). See docs/forms.md for how to add a form.

Who is printed on a form:

- 住民異動届: the persons who move (`CaseData.subjects()`), four a sheet, as many sheets as needed;
- forms named by procedures with `member_keys` (国保, マイナンバーカード, 電子証明書 …): those members
  (the procedures' keys, in household order); a procedure without keys means every person who
  moves; a form no procedure names (a staff preview): the applicant;
- 児童手当 and 子育て支援医療: the household's children (`children`), the 児童 of 児童手当法: born on or
  before the filing day and not past the 31 March after their 18th birthday.

Fixed-layout forms must fit their sheets: a sheet whose content runs onto a second page fails the
render (`PdfLayoutError`) instead of printing a form split in two. The 手続き案内票 and the 申請内容票
flow onto as many pages as they need.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import jinja2
import segno
from markupsafe import Markup

from app.domain.age import age_on, end_of_fiscal_year_after_18th_birthday
from app.domain.cases import (
    Address,
    CaseData,
    CaseProcedure,
    Person,
    ProcedureStatus,
    Signature,
    SignatureRole,
)
from app.domain.lifeevents.model import LifeEvent
from app.domain.wareki import format_date_for_resident, format_wareki
from app.printing.pdf import PdfLayoutError, needs_mj_font, render_pdf
from app.printing.signature import signature_svg

__all__ = [
    "FORM_TITLES",
    "SIGNATURE_BOX_MM",
    "PRINTABLE_FORMS",
    "TEMPLATE_DIR",
    "CaseView",
    "FormSheet",
    "PreparedForms",
    "RenderedForms",
    "case_view",
    "children",
    "form_persons",
    "prepare_forms",
    "question_texts",
    "render_form",
    "render_forms",
]

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "print" / "forms"
STYLESHEET = TEMPLATE_DIR / "forms.css"

GUIDE_SHEET = "guide_sheet"
SUMMARY = "application_summary"

# Form id (app/domain/lifeevents/data/forms.yaml, `printable: true`) → template in print/forms/.
PRINTABLE_FORMS: Mapping[str, str] = MappingProxyType(
    {
        "juminhyo_request": "juminhyo_request.html",
        "tax_certificate_request": "tax_certificate_request.html",
        "idou_todoke": "idou_todoke.html",
        "kokuho_shikaku": "kokuho_shikaku.html",
        "pin_reset": "pin_reset.html",
        "cert_issue": "cert_issue.html",
        "card_face_change": "card_face_change.html",
        "residence_period_change": "residence_period_change.html",
        "jido_teate_nintei": "jido_teate_nintei.html",
        "jido_teate_gakukaitei": "jido_teate_gakukaitei.html",
        "jido_teate_shometsu": "jido_teate_shometsu.html",
        "kosodate_iryo": "kosodate_iryo.html",
        GUIDE_SHEET: "guide_sheet.html",
        SUMMARY: "application_summary.html",
    }
)

# The titles printed at the top of each form (as in forms.yaml).
FORM_TITLES: Mapping[str, str] = MappingProxyType(
    {
        "juminhyo_request": "住民票等交付申請書",
        "tax_certificate_request": "税務証明交付申請書",
        "idou_todoke": "住民異動届",
        "kokuho_shikaku": "国民健康保険　資格取得・喪失届",
        "pin_reset": "暗証番号変更・再設定申請書",
        "cert_issue": "電子証明書　新規発行・更新申請書",
        "card_face_change": "個人番号カード券面記載事項変更届・電子証明書新規発行申請書",
        "residence_period_change": "在留期間更新に伴う有効期間変更申請書",
        "jido_teate_nintei": "児童手当　認定請求書",
        "jido_teate_gakukaitei": "児童手当　額改定認定請求書",
        "jido_teate_shometsu": "児童手当　受給事由消滅届",
        "kosodate_iryo": "子育て支援医療証交付申請書",
        GUIDE_SHEET: "手続き案内票",
        SUMMARY: "申請内容票",
    }
)

# Forms that flow onto as many pages as they need; the others are one page a sheet.
_FLOWING = frozenset({GUIDE_SHEET, SUMMARY})
# Persons a sheet on the forms that list persons in rows.
_ROWS_PER_SHEET: Mapping[str, int] = MappingProxyType(
    {
        "idou_todoke": 4,
        "kokuho_shikaku": 5,
        "card_face_change": 4,
        "cert_issue": 4,
        "pin_reset": 4,
        "residence_period_change": 3,
        "juminhyo_request": 4,
        "jido_teate_nintei": 5,
        "jido_teate_gakukaitei": 5,
        "jido_teate_shometsu": 5,
        "kosodate_iryo": 5,
    }
)
_CHILD_FORMS = frozenset(
    {"jido_teate_nintei", "jido_teate_gakukaitei", "jido_teate_shometsu", "kosodate_iryo"}
)
_SUBJECT_FORMS = frozenset({"idou_todoke"})

# Signature boxes (mm; .sig-box in forms.css): one size on every form, so each signature's SVG is
# made once a render and every form draws the same image.
SIGNATURE_BOX_MM = (62.0, 14.0)


# --- The case as the templates see it --------------------------------------------------------------


def _mayor_title(municipality: str) -> str:
    """「寒河江市」→「寒河江市長」, 「○○町」→「○○町長」, 「○○区」→「○○区長」; "" when unknown."""
    return f"{municipality}長" if municipality else ""


def _sex_label(code: str) -> str:
    return {"1": "男", "2": "女"}.get(code, "")


@dataclass(frozen=True, slots=True)
class PersonView:
    key: str
    name: str
    kana: str
    birth: str  # 和暦 (日本人) / 西暦 (外国人); "" when unknown
    sex: str  # 男 / 女 / ""
    relationship: str
    nationality: str
    foreign: bool
    resident_code: str
    age: str  # 満年齢 on the filing day, "" when the birth date is unknown

    @staticmethod
    def empty() -> PersonView:
        return PersonView("", "", "", "", "", "", "", False, "", "")

    @staticmethod
    def of(person: Person, filed_on: date) -> PersonView:
        birth = person.birth_date
        age = ""
        if birth is not None and birth <= filed_on:
            age = str(age_on(birth, filed_on))
        return PersonView(
            key=person.key,
            name=person.name,
            kana=person.kana,
            birth=format_date_for_resident(birth, person.is_foreign) if birth else "",
            sex=_sex_label(person.sex),
            relationship=person.relationship,
            nationality=person.nationality,
            foreign=person.is_foreign,
            resident_code=person.resident_code,
            age=age,
        )


@dataclass(frozen=True, slots=True)
class AddressView:
    postal_code: str
    address: str
    katagaki: str

    @staticmethod
    def of(address: Address) -> AddressView:
        return AddressView(address.postal_code, address.address, address.katagaki)

    @property
    def empty(self) -> bool:
        return not (self.postal_code or self.address or self.katagaki)


@dataclass(frozen=True, slots=True)
class ProcedureView:
    name: str
    bring: tuple[str, ...]
    why: tuple[str, ...]
    deadline: str  # 和暦, "" when none
    remaining: str  # 「あと5日」「今日まで」「期限を2日過ぎています」, "" when no deadline
    overdue: bool
    certain: bool
    done: bool
    persons: str  # whom it is for: 「山田　太郎、山田　花子」, "" for the whole household


@dataclass(frozen=True, slots=True)
class DepartmentView:
    department_id: str
    name: str
    procedures: tuple[ProcedureView, ...]
    qr: str  # data: URL of an SVG image
    url: str


@dataclass(frozen=True, slots=True)
class AnswerView:
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class CaseView:
    """Everything the templates print, as display strings ("" for what the case lacks)."""

    number: str
    event_id: str
    event_name: str
    event_date: str  # 和暦
    filed_on: str  # 和暦
    municipality: str
    addressee: str  # 「寒河江市長」 (templates add 「殿」)
    location: str
    clerk: str
    applicant: PersonView
    applicant_address: AddressView  # 届出人の住所
    applicant_relation: str
    phone: str
    new_address: AddressView
    old_address: AddressView
    new_head: str
    old_head: str
    members: tuple[PersonView, ...]
    subjects: tuple[PersonView, ...]
    subject_keys: frozenset[str]
    children: tuple[PersonView, ...]
    spouse: PersonView  # the applicant's spouse in the household (empty when none)
    parent_relation: str  # 父 / 母 when the applicant is a parent of the household's children
    identity_by_card: bool  # the applicant was read from the My Number Card
    resident_signature: str  # data: URL of an SVG image, or "" (the box stays empty)
    clerk_signature: str
    signed_on: str  # 和暦 date of the resident's signature


@dataclass(frozen=True, slots=True)
class FormSheet:
    """One page of a fixed-layout form: the persons in its rows and the empty rows after them."""

    anchor: str  # the HTML id of the sheet (finds its page after layout)
    number: int  # 1-based within the form
    count: int  # sheets of this form
    persons: tuple[PersonView, ...]
    blank_rows: int


def children(case: CaseData) -> tuple[Person, ...]:
    """The household's 児童 on the filing day: born by then, not past the 31 March after their
    18th birthday (児童手当法 §3), in household order."""
    return tuple(
        m
        for m in case.members
        if m.birth_date is not None
        and m.birth_date <= case.filed_on
        and case.filed_on <= end_of_fiscal_year_after_18th_birthday(m.birth_date)
    )


def form_persons(case: CaseData, form_id: str) -> tuple[Person, ...]:
    """The persons a form is filled in for (see the module docstring)."""
    if form_id in _CHILD_FORMS:
        return children(case)
    if form_id in _SUBJECT_FORMS:
        return case.subjects()
    naming = [p for p in case.procedures if form_id in p.forms and p.status is not ProcedureStatus.NOT_NEEDED]
    if not naming:
        return (case.applicant,)
    if any(not p.member_keys for p in naming):
        return case.subjects()
    keys = {key for p in naming for key in p.member_keys}
    return tuple(m for m in case.members if m.key in keys)


def _remaining(deadline: date, today: date) -> tuple[str, bool]:
    days = (deadline - today).days
    if days > 0:
        return f"あと{days}日", False
    if days == 0:
        return "今日まで", False
    return f"期限を{-days}日過ぎています", True


_SPOUSES = ("妻", "夫")


def _spouse(case: CaseData) -> Person | None:
    """The applicant's spouse among the members, by 続柄 (世帯主 ↔ 妻・夫)."""
    own = case.applicant.relationship
    if own == "世帯主":
        wanted: tuple[str, ...] = _SPOUSES
    elif own in _SPOUSES:
        wanted = ("世帯主",)
    else:
        return None
    return next((m for m in case.members if m.key != case.applicant.key and m.relationship in wanted), None)


def _parent_relation(case: CaseData) -> str:
    """父 / 母 when the children are the 子 of the household and the applicant is its head or the
    head's spouse; "" when that cannot be told from the 続柄 and sex."""
    own = case.applicant.relationship
    if own not in ("世帯主", *_SPOUSES) or not any(c.relationship == "子" for c in children(case)):
        return ""
    return {"1": "父", "2": "母"}.get(case.applicant.sex, "")


def _home_address(case: CaseData) -> Address:
    """The applicant's address in this municipality: the old one for 転出, the new one otherwise;
    blank when the applicant is not a member of the household (an agent)."""
    if case.member(case.applicant.key) is None:
        return Address()
    return case.old_address if case.event_id == "tenshutsu" else case.new_address


def _svg_uri(svg: str) -> str:
    """An SVG as a `data:` URL. Images, rather than inline `<svg>`: the HTML parser reads a long
    attribute much faster than the elements, and WeasyPrint parses an image once per render
    however many times it is drawn (the same signature on every form)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _qr_svg(url: str) -> str:
    """A QR code as an SVG image (one path of vector lines); its size comes from the CSS."""
    qr = segno.make(url, error="m", micro=False)
    return str(qr.svg_data_uri(scale=1, border=0, omitsize=True))


def case_url(case: CaseData, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/cases/scan/{quote(case.token, safe='')}"


def department_url(case: CaseData, base_url: str, department_id: str) -> str:
    return f"{case_url(case, base_url)}?d={quote(department_id, safe='')}"


def _departments(case: CaseData, base_url: str) -> tuple[DepartmentView, ...]:
    groups: dict[str, list[CaseProcedure]] = {}
    for procedure in case.procedures:
        if procedure.status is ProcedureStatus.NOT_NEEDED:
            continue
        groups.setdefault(procedure.department_id, []).append(procedure)
    views: list[DepartmentView] = []
    all_subjects = {m.key for m in case.subjects()}
    for department_id, procedures in groups.items():
        items: list[ProcedureView] = []
        for p in procedures:
            deadline, remaining, overdue = "", "", False
            if p.deadline is not None:
                deadline = format_wareki(p.deadline)
                remaining, overdue = _remaining(p.deadline, case.filed_on)
            persons = ""
            if p.member_keys and set(p.member_keys) != all_subjects:
                names = [m.name for m in case.members if m.key in p.member_keys and m.name]
                persons = "、".join(names)
            items.append(
                ProcedureView(
                    name=p.name,
                    bring=p.bring,
                    why=p.why,
                    deadline=deadline,
                    remaining=remaining,
                    overdue=overdue,
                    certain=p.certain,
                    done=p.status is ProcedureStatus.DONE,
                    persons=persons,
                )
            )
        url = department_url(case, base_url, department_id)
        views.append(
            DepartmentView(
                department_id=department_id,
                name=procedures[0].department_name or department_id,
                procedures=tuple(items),
                qr=_qr_svg(url),
                url=url,
            )
        )
    return tuple(views)


def _answer_text(value: Any, choices: Mapping[str, str]) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, date):
        return format_wareki(value)
    if isinstance(value, str):
        parsed = _iso_date(value)
        if parsed is not None:
            return format_wareki(parsed)
        return choices.get(value, value)
    if isinstance(value, list | tuple):
        return "、".join(_answer_text(item, choices) for item in value)
    return str(value)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(text: str) -> date | None:
    if not _ISO_DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _answers(
    case: CaseData,
    questions: Mapping[str, str],
    choices: Mapping[str, Mapping[str, str]],
) -> tuple[AnswerView, ...]:
    return tuple(
        AnswerView(questions.get(key) or key, _answer_text(value, choices.get(key, {})))
        for key, value in case.answers.items()
    )


def question_texts(event: LifeEvent) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The Japanese question texts of an event's questions, by answer id, and the labels of their
    choices (answer id → value → label): the `questions` and `choices` of `render_forms`.

    With the rules in force: ``question_texts(current_rules(session)[1].event(case.event_id).event)``.
    """
    texts = {q.id: q.text.ja for q in event.questions}
    labels = {q.id: {c.value: c.label.ja for c in q.options} for q in event.questions if q.options}
    return texts, labels


def _signature_uri(signature: Signature | None) -> str:
    svg = signature_svg(signature, *SIGNATURE_BOX_MM)
    return _svg_uri(svg) if svg else ""


def case_view(case: CaseData) -> CaseView:
    filed = case.filed_on
    resident = case.signature(SignatureRole.RESIDENT)
    clerk = case.signature(SignatureRole.CLERK)
    spouse = _spouse(case)
    signed_on = ""
    if resident is not None and resident.signed_at is not None and resident.strokes:
        signed_on = format_wareki(resident.signed_at.date())
    return CaseView(
        number=case.number,
        event_id=case.event_id,
        event_name=case.event_name,
        event_date=format_wareki(case.event_date) if case.event_date else "",
        filed_on=format_wareki(filed),
        municipality=case.municipality,
        addressee=_mayor_title(case.municipality),
        location=case.location,
        clerk=case.clerk,
        applicant=PersonView.of(case.applicant, filed),
        applicant_address=AddressView.of(_home_address(case)),
        applicant_relation=case.applicant_relation,
        phone=case.phone,
        new_address=AddressView.of(case.new_address),
        old_address=AddressView.of(case.old_address),
        new_head=case.new_head,
        old_head=case.old_head,
        members=tuple(PersonView.of(m, filed) for m in case.members),
        subjects=tuple(PersonView.of(m, filed) for m in case.subjects()),
        subject_keys=frozenset(m.key for m in case.subjects()),
        children=tuple(PersonView.of(m, filed) for m in children(case)),
        spouse=PersonView.of(spouse, filed) if spouse is not None else PersonView.empty(),
        parent_relation=_parent_relation(case),
        identity_by_card=case.applicant.source == "card",
        resident_signature=_signature_uri(resident),
        clerk_signature=_signature_uri(clerk),
        signed_on=signed_on,
    )


def _sheets(case: CaseData, form_id: str, filed: date) -> list[FormSheet]:
    rows = _ROWS_PER_SHEET.get(form_id)
    if rows is None:
        return [FormSheet(f"form-{form_id}-1", 1, 1, (), 0)]
    persons = [PersonView.of(p, filed) for p in form_persons(case, form_id)]
    chunks = [tuple(persons[i : i + rows]) for i in range(0, len(persons), rows)] or [()]
    return [
        FormSheet(f"form-{form_id}-{n}", n, len(chunks), chunk, rows - len(chunk))
        for n, chunk in enumerate(chunks, start=1)
    ]


# --- Templates -------------------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    """Nothing prints as "None": a missing value is an empty box."""
    return "" if value is None else value


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["mj_runs"] = needs_mj_font
    return env


_BETWEEN_TAGS = re.compile(r">[ \t\r\n]+<")


@dataclass(frozen=True, slots=True)
class PreparedForms:
    """The forms as one HTML document, before layout (what `render_forms` hands to WeasyPrint)."""

    html: str
    stylesheets: tuple[Path | str, ...]
    form_ids: tuple[str, ...]
    sheet_anchors: Mapping[str, tuple[str, ...]]  # form id → the ids of its sheets, in order
    case_url: str
    department_urls: Mapping[str, str]  # department id → its QR's URL (the 手続き案内票's)


@dataclass(frozen=True, slots=True)
class RenderedForms:
    pdf: bytes
    pages: int
    form_ids: tuple[str, ...]  # the forms in the PDF, in order
    form_pages: Mapping[str, tuple[int, int]]  # form id → (first page, pages), 1-based
    skipped: tuple[str, ...] = ()  # forms the case names that Madoguchi does not print


def default_form_ids(case: CaseData) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the forms `render_forms` prints by default, in order; the named forms it does not print)."""
    return _default_forms(case)


def chosen_form_ids(form_ids: Iterable[str]) -> tuple[str, ...]:
    """The printable ids asked for, each once, in order (ValueError for an unknown id)."""
    return _chosen_forms(form_ids)


def rows_per_sheet(form_id: str) -> int:
    """Persons a sheet on the forms that list persons in rows; 0 for the others."""
    return _ROWS_PER_SHEET.get(form_id, 0)


def _default_forms(case: CaseData) -> tuple[tuple[str, ...], tuple[str, ...]]:
    named = case.forms()
    printable = [f for f in named if f in PRINTABLE_FORMS and f not in (GUIDE_SHEET, SUMMARY)]
    skipped = tuple(f for f in named if f not in PRINTABLE_FORMS)
    return (*printable, SUMMARY, GUIDE_SHEET), skipped


def _chosen_forms(form_ids: Iterable[str]) -> tuple[str, ...]:
    chosen: dict[str, None] = {}
    for form_id in form_ids:
        if form_id not in PRINTABLE_FORMS:
            raise ValueError(f"印刷できない様式です: {form_id}（unknown or non-printable form id）")
        chosen.setdefault(form_id, None)
    if not chosen:
        raise ValueError("印刷する様式がありません（no form ids given）")
    return tuple(chosen)


def prepare_forms(
    case: CaseData,
    form_ids: Sequence[str],
    *,
    base_url: str = "",
    questions: Mapping[str, str] | None = None,
    choices: Mapping[str, Mapping[str, str]] | None = None,
) -> PreparedForms:
    """Fill the templates of `form_ids` (printable ids, in this order) into one HTML document."""
    chosen = _chosen_forms(form_ids)
    view = case_view(case)
    env = _environment()
    parts: list[str] = []
    anchors: dict[str, tuple[str, ...]] = {}
    departments: tuple[DepartmentView, ...] = ()
    if GUIDE_SHEET in chosen:
        departments = _departments(case, base_url)
    url = case_url(case, base_url)
    for form_id in chosen:
        sheets = _sheets(case, form_id, case.filed_on)
        anchors[form_id] = tuple(s.anchor for s in sheets)
        context: dict[str, Any] = {
            "v": view,
            "form_id": form_id,
            "title": FORM_TITLES[form_id],
            "sheets": sheets,
        }
        if form_id == GUIDE_SHEET:
            context |= {"departments": departments, "case_qr": _qr_svg(url), "case_url": url}
        elif form_id == SUMMARY:
            context["answers"] = _answers(case, questions or {}, choices or {})
        parts.append(env.get_template(PRINTABLE_FORMS[form_id]).render(context))
    html = env.get_template("_document.html").render(
        title=f"{case.number} {case.event_name}".strip(), body=Markup("".join(parts))
    )
    return PreparedForms(
        html=_BETWEEN_TAGS.sub("><", html),
        stylesheets=(STYLESHEET,),
        form_ids=chosen,
        sheet_anchors=MappingProxyType(anchors),
        case_url=url,
        department_urls=MappingProxyType({d.department_id: d.url for d in departments}),
    )


def _page_ranges(
    prepared: PreparedForms, page_anchors: Sequence[Sequence[str]]
) -> dict[str, tuple[int, int]]:
    """Which pages each form took; raises PdfLayoutError when a fixed-layout sheet overflowed."""
    owner: dict[str, str] = {a: f for f, sheet_ids in prepared.sheet_anchors.items() for a in sheet_ids}
    pages_of: dict[str, list[int]] = {}
    current: str | None = None
    for number, anchors in enumerate(page_anchors, start=1):
        starts = [owner[a] for a in anchors if a in owner]
        if starts:
            current = starts[-1]
        elif current is not None and current not in _FLOWING:
            raise PdfLayoutError(
                f"{FORM_TITLES[current]}（{current}）の内容が1ページに収まりません: page {number} continues a sheet"
            )
        if current is not None:
            pages_of.setdefault(current, []).append(number)
    return {f: (pages[0], len(pages)) for f, pages in pages_of.items()}


def render_forms(
    case: CaseData,
    form_ids: Sequence[str] | None = None,
    *,
    base_url: str = "",
    questions: Mapping[str, str] | None = None,
    choices: Mapping[str, Mapping[str, str]] | None = None,
) -> RenderedForms:
    """One PDF with the forms `form_ids` (default: the printable forms the case's procedures name,
    then the 申請内容票 and the 手続き案内票), pre-filled from `case`.

    `base_url` prefixes the 手続き案内票's QR codes (…/cases/scan/<token>[?d=<department>]);
    `questions` maps answer ids to the question texts the 申請内容票 prints (the id when missing),
    `choices` answer ids to their choice labels (see `question_texts`). Raises ValueError for an id
    that is not in PRINTABLE_FORMS and PdfLayoutError when a form does not fit its sheets.
    """
    skipped: tuple[str, ...] = ()
    if form_ids is None:
        chosen, skipped = _default_forms(case)
    else:
        chosen = _chosen_forms(form_ids)
    prepared = prepare_forms(case, chosen, base_url=base_url, questions=questions, choices=choices)
    rendered = render_pdf(
        prepared.html,
        stylesheets=prepared.stylesheets,
        title=f"{case.number} {case.event_name}".strip(),
    )
    ranges = _page_ranges(prepared, rendered.anchors)
    return RenderedForms(
        pdf=rendered.pdf,
        pages=rendered.pages,
        form_ids=prepared.form_ids,
        form_pages=MappingProxyType(ranges),
        skipped=skipped,
    )


def render_form(
    case: CaseData,
    form_id: str,
    *,
    base_url: str = "",
    questions: Mapping[str, str] | None = None,
    choices: Mapping[str, Mapping[str, str]] | None = None,
) -> RenderedForms:
    """One form (a staff preview); see `render_forms`."""
    return render_forms(case, [form_id], base_url=base_url, questions=questions, choices=choices)
