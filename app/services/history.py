"""Certificate issue history (交付履歴): search, one request's full record, reprints, CSV export.

Pure queries over the certificate tables, usable without HTTP. The web layer (app/web/history.py)
writes the audit entries for looking (searches, views, exports): showing who asked for which
certificate is a personal-data view. A reprint is ordered here and made after the commit; it
writes two entries when the new issue is recorded (certificates.run_print_order):
`certificate.reprint` (with the new 発行番号) and `certificate.reprint_reason` (with the reason the
staff member gave and the issue it repeats).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from app.domain.certificates import CertificateType
from app.domain.requests import RequestState
from app.domain.text import search_key
from app.models import (
    AuditEntry,
    CertificateIssue,
    CertificateRequest,
    Device,
    IssuedCopy,
    Location,
    PrintJob,
    Resident,
    StaffUser,
)
from app.services import certificates as certificate_service
from app.services.audit import Actor
from app.services.certificates import PrintOrder, RequestError, reception_label, today_jst

JST = ZoneInfo("Asia/Tokyo")
PAGE_SIZE = 50
CSV_LIMIT = 50_000
REASON_MAX = 255

__all__ = [
    "CSV_COLUMNS",
    "CSV_LIMIT",
    "PAGE_SIZE",
    "HistoryDetail",
    "HistoryFilters",
    "HistoryRow",
    "IssueView",
    "Page",
    "csv_rows",
    "detail",
    "locations",
    "parse_filters",
    "reprint",
    "search",
]


# Filters ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilters:
    """What the history screen and the CSV export filter on. None / "" means: any."""

    date_from: date | None = None
    date_to: date | None = None
    resident: str = ""  # 宛名番号 (exact, digits) or a name / kana (normalised, infix)
    reception_number: int | None = None
    issue_number: str = ""  # 発行番号, full or a prefix; spaces do not matter
    certificate_type: CertificateType | None = None
    location_id: int | None = None
    state: RequestState | None = None
    page: int = 1

    def describe(self) -> dict[str, Any]:
        """The filters that are set, as plain values (for the audit log)."""
        values = {key: value for key, value in asdict(self).items() if key != "page"}
        return {key: str(value) for key, value in values.items() if value not in (None, "")}

    def query(self, **changes: Any) -> dict[str, str]:
        """The filters as the screen's query parameters (for pager and CSV links)."""
        values = {
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "resident": self.resident,
            "number": str(self.reception_number) if self.reception_number is not None else "",
            "issue": self.issue_number,
            "type": self.certificate_type.value if self.certificate_type else "",
            "location": str(self.location_id) if self.location_id is not None else "",
            "state": self.state.value if self.state else "",
        }
        if self.page > 1:
            values["page"] = str(self.page)
        values.update({key: str(value) for key, value in changes.items()})
        if values.get("page") == "1":
            del values["page"]
        return values


def _date_param(params: Mapping[str, str], name: str, default: date) -> date | None:
    """An absent parameter means the default (today); an empty one means no limit."""
    if name not in params:
        return default
    raw = params[name].strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return default


def _int_param(raw: str | None) -> int | None:
    text = unicodedata.normalize("NFKC", raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def parse_filters(params: Mapping[str, str], *, today: date | None = None) -> HistoryFilters:
    """Read the filters from query parameters; anything malformed is left out, never an error."""
    today = today or today_jst()
    date_from = _date_param(params, "from", today)
    date_to = _date_param(params, "to", today)
    if date_from and date_to and date_from > date_to:
        date_from, date_to = date_to, date_from
    kinds = {kind.value: kind for kind in CertificateType}
    states = {state.value: state for state in RequestState}
    return HistoryFilters(
        date_from=date_from,
        date_to=date_to,
        resident=params.get("resident", "").strip()[:100],
        reception_number=_int_param(params.get("number")),
        issue_number=unicodedata.normalize("NFKC", params.get("issue", "")).strip()[:80],
        certificate_type=kinds.get(params.get("type", "")),
        location_id=_int_param(params.get("location")),
        state=states.get(params.get("state", "")),
        page=max(1, _int_param(params.get("page")) or 1),
    )


def _filtered(filters: HistoryFilters) -> SelectOfScalar[CertificateRequest]:
    statement = select(CertificateRequest)
    if filters.date_from:
        statement = statement.where(CertificateRequest.reception_date >= filters.date_from)
    if filters.date_to:
        statement = statement.where(CertificateRequest.reception_date <= filters.date_to)
    if filters.resident:
        text = unicodedata.normalize("NFKC", filters.resident).strip()
        if text.isascii() and text.isdigit():
            residents = select(Resident.id).where(Resident.atena_number == text)
        else:
            key = search_key(text)
            residents = select(Resident.id).where(col(Resident.search_key).contains(key, autoescape=True))
        statement = statement.where(col(CertificateRequest.applicant_id).in_(residents))
    if filters.reception_number is not None:
        statement = statement.where(CertificateRequest.reception_number == filters.reception_number)
    if filters.issue_number:
        compact = "".join(filters.issue_number.split())
        number = func.replace(col(IssuedCopy.issue_number), " ", "", type_=String)
        issues = (
            select(CertificateIssue.request_id)
            .join(IssuedCopy, col(IssuedCopy.issue_id) == col(CertificateIssue.id))
            .where(number.startswith(compact, autoescape=True))
        )
        statement = statement.where(col(CertificateRequest.id).in_(issues))
    if filters.certificate_type:
        statement = statement.where(CertificateRequest.certificate_type == filters.certificate_type)
    if filters.location_id is not None:
        statement = statement.where(CertificateRequest.location_id == filters.location_id)
    if filters.state:
        statement = statement.where(CertificateRequest.state == filters.state)
    return statement


def _newest_first(statement: SelectOfScalar[CertificateRequest]) -> SelectOfScalar[CertificateRequest]:
    return statement.order_by(
        col(CertificateRequest.reception_date).desc(), col(CertificateRequest.id).desc()
    )


# Search ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    request: CertificateRequest
    number: str  # reception number as printed on the receipt, e.g. "007"
    location: str
    terminal: str
    applicant: Resident | None
    issues: int  # all issues, reprints included
    reprints: int


@dataclass(frozen=True)
class Page:
    rows: list[HistoryRow]
    total: int
    page: int
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, (self.total + self.page_size - 1) // self.page_size)


@dataclass
class _Lookups:
    locations: dict[int, str] = field(default_factory=dict)
    terminals: dict[int, str] = field(default_factory=dict)
    residents: dict[int, Resident] = field(default_factory=dict)


def _lookups(session: Session, requests: Sequence[CertificateRequest]) -> _Lookups:
    found = _Lookups()
    found.locations = {loc.id: loc.name for loc in session.exec(select(Location)).all() if loc.id is not None}
    device_ids = {r.device_id for r in requests if r.device_id is not None}
    if device_ids:
        devices = session.exec(select(Device).where(col(Device.id).in_(device_ids))).all()
        found.terminals = {d.id: d.code for d in devices if d.id is not None}
    applicant_ids = {r.applicant_id for r in requests}
    if applicant_ids:
        residents = session.exec(select(Resident).where(col(Resident.id).in_(applicant_ids))).all()
        found.residents = {r.id: r for r in residents if r.id is not None}
    return found


def _issues_of(session: Session, request_ids: Iterable[int]) -> dict[int, list[CertificateIssue]]:
    ids = list(request_ids)
    grouped: dict[int, list[CertificateIssue]] = {}
    if not ids:
        return grouped
    issues = session.exec(
        select(CertificateIssue)
        .where(col(CertificateIssue.request_id).in_(ids))
        .order_by(col(CertificateIssue.id))
    ).all()
    for issue in issues:
        grouped.setdefault(issue.request_id, []).append(issue)
    return grouped


def search(session: Session, filters: HistoryFilters, *, page_size: int = PAGE_SIZE) -> Page:
    """One page of requests matching the filters, newest first, with the names to show."""
    statement = _filtered(filters)
    total = session.exec(select(func.count()).select_from(statement.subquery())).one()
    requests = list(
        session.exec(_newest_first(statement).offset((filters.page - 1) * page_size).limit(page_size)).all()
    )
    found = _lookups(session, requests)
    issues = _issues_of(session, (r.id for r in requests if r.id is not None))
    rows = []
    for r in requests:
        own = issues.get(r.id or 0, [])
        rows.append(
            HistoryRow(
                request=r,
                number=reception_label(r.reception_number),
                location=found.locations.get(r.location_id, ""),
                terminal=found.terminals.get(r.device_id or 0, ""),
                applicant=found.residents.get(r.applicant_id),
                issues=len(own),
                reprints=sum(1 for i in own if i.reprint_of is not None),
            )
        )
    return Page(rows=rows, total=total, page=filters.page, page_size=page_size)


def locations(session: Session) -> list[Location]:
    """Every location, for the filter's choices."""
    return list(session.exec(select(Location).order_by(col(Location.code))).all())


# Detail ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueView:
    issue: CertificateIssue
    issue_numbers: list[str]
    issued_by: StaffUser | None  # None: printed automatically
    print_job: PrintJob | None

    @property
    def is_reprint(self) -> bool:
        return self.issue.reprint_of is not None


@dataclass(frozen=True)
class HistoryDetail:
    request: CertificateRequest
    number: str
    location: Location | None
    terminal: Device | None
    applicant: Resident | None
    subjects: list[Resident]  # the persons shown (住民票: the chosen members; empty = whole household)
    handed_over_by: StaffUser | None
    issues: list[IssueView]
    audit_trail: list[AuditEntry]

    @property
    def printed_by(self) -> StaffUser | None:
        """Who printed the original issue (None with issues: printed automatically)."""
        return self.issues[0].issued_by if self.issues else None

    @property
    def latest_issue_id(self) -> int | None:
        return self.issues[-1].issue.id if self.issues else None

    @property
    def shown_items(self) -> list[str]:
        """The optional items the certificate shows: head_relationship, honseki, my_number, resident_code."""
        options = self.request.options
        names = ("head_relationship", "honseki", "my_number", "resident_code")
        return [name for name in names if options.get(f"show_{name}")]

    @property
    def fiscal_year(self) -> int | None:
        value = self.request.options.get("fiscal_year")
        return int(value) if value else None


def _numbers_of(session: Session, issue_ids: Sequence[int]) -> dict[int, list[str]]:
    numbers: dict[int, list[str]] = {}
    if not issue_ids:
        return numbers
    copies = session.exec(
        select(IssuedCopy).where(col(IssuedCopy.issue_id).in_(issue_ids)).order_by(col(IssuedCopy.id))
    ).all()
    for copy in copies:
        numbers.setdefault(copy.issue_id, []).append(copy.issue_number)
    return numbers


def _users(session: Session, ids: Iterable[int | None]) -> dict[int, StaffUser]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    users = session.exec(select(StaffUser).where(col(StaffUser.id).in_(wanted))).all()
    return {u.id: u for u in users if u.id is not None}


def detail(session: Session, request_id: int) -> HistoryDetail | None:
    """Everything recorded about one request: who, when, where, what, its issues and its audit trail."""
    request = session.get(CertificateRequest, request_id)
    if request is None:
        return None
    issues = _issues_of(session, [request_id]).get(request_id, [])
    issue_ids = [i.id for i in issues if i.id is not None]
    numbers = _numbers_of(session, issue_ids)
    users = _users(session, [request.handed_over_by, *(i.issued_by for i in issues)])
    job_ids = [i.print_job_id for i in issues if i.print_job_id is not None]
    jobs = (
        {j.id: j for j in session.exec(select(PrintJob).where(col(PrintJob.id).in_(job_ids))).all()}
        if job_ids
        else {}
    )
    member_ids = request.options.get("member_ids")
    subjects: list[Resident] = []
    if member_ids:
        subjects = list(
            session.exec(
                select(Resident).where(col(Resident.id).in_(list(member_ids))).order_by(col(Resident.id))
            ).all()
        )
    trail = list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.target_type == "certificate_request", AuditEntry.target_id == str(request_id))
            .order_by(col(AuditEntry.seq))
        ).all()
    )
    return HistoryDetail(
        request=request,
        number=reception_label(request.reception_number),
        location=session.get(Location, request.location_id),
        terminal=session.get(Device, request.device_id) if request.device_id else None,
        applicant=session.get(Resident, request.applicant_id),
        subjects=subjects,
        handed_over_by=users.get(request.handed_over_by or 0),
        issues=[
            IssueView(
                issue=i,
                issue_numbers=numbers.get(i.id or 0, []),
                issued_by=users.get(i.issued_by or 0),
                print_job=jobs.get(i.print_job_id or 0),
            )
            for i in issues
        ],
        audit_trail=trail,
    )


# Reprint ---------------------------------------------------------------------------------------


def reprint(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    reason: str,
    staff_id: int | None,
    expected_latest_issue: int | None = None,
) -> int:
    """Order a reprint of a request from its history, with new 発行番号; the caller commits.

    Returns the id of the issue being reprinted. The reprint itself is made after the commit
    (certificates.run_print_order), which logs `certificate.reprint` and, with the reason,
    `certificate.reprint_reason`. Only requests that were printed before can be reprinted (the
    first print is made from the queue). `expected_latest_issue` is the newest issue the staff
    member saw: if another issue was made since (a double click, a colleague), nothing is printed
    twice — checked here, and again by the print order itself when it records the issue.
    """
    reason = " ".join(reason.split())
    if not reason:
        raise RequestError("再印刷の理由を入力してください。")
    if len(reason) > REASON_MAX:
        raise RequestError(f"再印刷の理由は{REASON_MAX}文字以内で入力してください。")
    request = session.get(CertificateRequest, request_id)
    if request is None:
        raise RequestError("申請が見つかりません。")
    latest = session.exec(
        select(CertificateIssue)
        .where(CertificateIssue.request_id == request_id)
        .order_by(col(CertificateIssue.id).desc())
    ).first()
    if latest is None:
        raise RequestError(
            "この申請はまだ印刷されていません。最初の印刷は「証明書の受付」画面から行ってください。"
        )
    if expected_latest_issue is not None and latest.id != expected_latest_issue:
        raise RequestError(
            "この画面を開いた後に、この申請は印刷されています。履歴を確かめてから操作してください。"
        )
    if request.state == RequestState.CANCELLED:
        raise RequestError(f"「{request.state.label_ja}」の申請は印刷できません。")
    location = session.get(Location, request.location_id)
    assert location is not None and latest.id is not None
    if certificate_service.office_device_for(session, location) is None:
        raise RequestError("この窓口の事務用プリンター（端末）が登録されていません。")
    certificate_service.print_on_commit(
        session,
        PrintOrder(
            request_id=request_id, actor=actor, staff_id=staff_id, reprint_of=latest.id, reason=reason
        ),
    )
    return latest.id


# CSV -------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "受付日",
    "受付番号",
    "窓口",
    "端末",
    "証明書",
    "通数",
    "手数料",
    "状態",
    "申請者宛名番号",
    "発行番号",
    "再印刷",
    "印刷者",
    "交付者",
    "交付日時",
)
AUTOMATIC = "自動"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """Text that a spreadsheet would run as a formula is prefixed with an apostrophe."""
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def _local(value: datetime | None) -> str:
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def csv_rows(
    session: Session, filters: HistoryFilters, *, limit: int = CSV_LIMIT, batch: int = 500
) -> Iterator[list[str]]:
    """The header, then one row per matching request (oldest first), at most `limit` requests.

    Columns (CSV_COLUMNS): 受付日 (YYYY-MM-DD), 受付番号 (as on the receipt, "007"), 窓口 (location
    name), 端末 (kiosk terminal code), 証明書, 通数, 手数料 (yen), 状態, 申請者宛名番号, 発行番号
    (every copy's and page's number of every issue, ";"-separated), 再印刷 (number of reprints),
    印刷者 (who printed the first issue; 「自動」 when printed automatically), 交付者, 交付日時
    (Japan time, YYYY-MM-DD HH:MM:SS). Names of residents are not exported.
    """
    yield list(CSV_COLUMNS)
    statement = _filtered(filters).order_by(
        col(CertificateRequest.reception_date), col(CertificateRequest.id)
    )
    offset = 0
    while offset < limit:
        requests = list(session.exec(statement.offset(offset).limit(min(batch, limit - offset))).all())
        if not requests:
            return
        offset += len(requests)
        found = _lookups(session, requests)
        issues = _issues_of(session, (r.id for r in requests if r.id is not None))
        all_issues = [i for own in issues.values() for i in own]
        numbers = _numbers_of(session, [i.id for i in all_issues if i.id is not None])
        users = _users(session, [*(r.handed_over_by for r in requests), *(i.issued_by for i in all_issues)])
        for r in requests:
            own = issues.get(r.id or 0, [])
            applicant = found.residents.get(r.applicant_id)
            printer = ""
            if own:
                first = users.get(own[0].issued_by or 0)
                printer = first.display_name if first else AUTOMATIC
            handed = users.get(r.handed_over_by or 0)
            yield [
                r.reception_date.isoformat(),
                reception_label(r.reception_number),
                _cell(found.locations.get(r.location_id, "")),
                _cell(found.terminals.get(r.device_id or 0, "")),
                r.certificate_type.label_ja,
                str(r.copies),
                str(r.fee_total),
                r.state.label_ja,
                applicant.atena_number if applicant else "",
                ";".join(n for i in own for n in numbers.get(i.id or 0, [])),
                str(sum(1 for i in own if i.reprint_of is not None)),
                _cell(printer),
                _cell(handed.display_name if handed else ""),
                _local(r.handed_over_at),
            ]
        session.expunge_all()
