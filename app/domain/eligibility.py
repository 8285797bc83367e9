"""Kiosk self-service refusal rules for a certificate request (design note domain.md,
"Certificates"). Pure: the caller passes plain values or Resident-like objects.

The kiosk issues a certificate only when `kiosk_refusals` returns nothing. Every refusal says,
kindly and in three registers (日本語, やさしい日本語, English), that the resident should come to
the counter. Rules:

- the applicant (the card holder) must be 15 or over (年齢計算ニ関スル法律) with a known birth date;
- nobody involved may have moved out, be moving out (転出予定), have died, or be otherwise not
  a resident; a pending or same-day 転出 of *any* member of the applicant's household refers the
  whole household to the counter;
- nobody may be looked up on the day of their 転入 or 転居 (became_resident_on / address_set_on
  == today): the record is still being settled;
- a 支援措置 (DV/stalking protection) or any other 抑止 flag on the applicant or any member of the
  household refers the request to the counter with a message that does not say why;
- names with characters not yet registered (外字) cannot be printed;
- 住民票の写し only for members of the applicant's own household;
- 印鑑登録証明書 and 課税・所得証明書 only for the applicant; 印鑑登録証明書 needs the applicant's
  active registered seal; tax certificates only for the fiscal year the kiosk currently issues.

Sensitive refusals (支援措置, other 抑止) carry `sensitive=True`; show residents the list from
`for_display`, which collapses everything to one neutral message when any refusal is sensitive,
so the neutral message cannot be told apart by what else is (or is not) shown beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Literal, Protocol

from app.domain.age import age_on, fiscal_year_of
from app.domain.registry import ResidentStatus, Suppression
from app.domain.wareki import era_year

__all__ = [
    "DEFAULT_POLICY",
    "CertificateKind",
    "KioskPolicy",
    "Refusal",
    "RefusalCode",
    "ResidentFacts",
    "ResidentLike",
    "for_display",
    "kiosk_refusals",
    "kiosk_tax_fiscal_year",
]

CertificateKind = Literal["juminhyo", "inkan", "tax"]
_KNOWN_CERTIFICATES: frozenset[str] = frozenset({"juminhyo", "inkan", "tax"})


class ResidentLike(Protocol):
    """What the rules read from a resident; app.models.Resident satisfies it."""

    @property
    def id(self) -> int | None: ...
    @property
    def household_id(self) -> int: ...
    @property
    def birth_date(self) -> date | None: ...
    @property
    def status(self) -> str: ...
    @property
    def status_changed_on(self) -> date | None: ...
    @property
    def became_resident_on(self) -> date | None: ...
    @property
    def address_set_on(self) -> date | None: ...
    @property
    def suppressions(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class ResidentFacts:
    """A plain ResidentLike, for callers (and tests) that do not hold ORM objects."""

    id: int | None
    household_id: int
    birth_date: date | None
    status: str = ResidentStatus.RESIDENT
    status_changed_on: date | None = None
    became_resident_on: date | None = None
    address_set_on: date | None = None
    suppressions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KioskPolicy:
    """Per-municipality settings. Defaults follow domain.md; the [INFERENCE] ones are settings.

    tax_year_opens: (month, day) from which a 年度's tax certificates are issued on the kiosk;
        before it, within that 年度, the kiosk still issues the previous 年度 (many towns set
        (6, 1), when 当初課税 is settled). (4, 1) = simply the current 年度.
    recent_move_out_days: a member whose 転出 took effect this many days ago or less still
        refers the household to the counter (0 = only on the day itself). A pending 転出
        (moving_out) always does.
    """

    min_applicant_age: int = 15
    tax_year_opens: tuple[int, int] = (4, 1)
    recent_move_out_days: int = 0


DEFAULT_POLICY = KioskPolicy()


class RefusalCode(StrEnum):
    UNSUPPORTED_CERTIFICATE = "unsupported_certificate"
    UNDER_AGE = "under_age"
    BIRTH_DATE_UNKNOWN = "birth_date_unknown"
    DECEASED = "deceased"
    MOVED_OUT = "moved_out"
    MOVING_OUT = "moving_out"
    NOT_RESIDENT = "not_resident"  # 職権消除 and other removals, unknown statuses
    HOUSEHOLD_MOVING_OUT = "household_moving_out"
    MOVED_IN_TODAY = "moved_in_today"
    NAME_CHARACTERS_PENDING = "name_characters_pending"
    RESTRICTED = "not_issuable_here"  # 支援措置 and other 抑止: deliberately vague, even the code
    NOT_IN_HOUSEHOLD = "not_in_household"
    OWN_CERTIFICATE_ONLY = "own_certificate_only"
    NO_REGISTERED_SEAL = "no_registered_seal"
    TAX_YEAR_NOT_AVAILABLE = "tax_year_not_available"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message_ja: str
    message_easy_ja: str
    message_en: str
    sensitive: bool = False
    # Who the rule matched, for staff and the audit log only — never for the kiosk screen.
    resident_ids: tuple[int, ...] = field(default=(), compare=False)


# code → (日本語, やさしい日本語, English). Every message ends by referring the resident to the
# counter; the Japanese ones end with 「窓口へお越しください。」 (checked by the tests).
_MESSAGES: dict[RefusalCode, tuple[str, str, str]] = {
    RefusalCode.UNSUPPORTED_CERTIFICATE: (
        "この証明書は、こちらの端末では発行できません。窓口へお越しください。",
        "この 証明書（しょうめいしょ）は ここでは 出せません（だせません）。窓口（まどぐち）に 来て（きて）ください。",
        "This certificate is not available at this kiosk. Please come to the counter.",
    ),
    RefusalCode.UNDER_AGE: (
        "{age}歳未満の方は、こちらの端末ではお手続きできません。窓口へお越しください。",
        "{age}さい より 下（した）の 人（ひと）は ここで 手続き（てつづき）が できません。"
        "窓口（まどぐち）に 来て（きて）ください。",
        "People under {age} cannot use this kiosk on their own. Please come to the counter.",
    ),
    RefusalCode.BIRTH_DATE_UNKNOWN: (
        "ご登録の内容を職員が確認する必要があるため、こちらの端末ではお手続きできません。窓口へお越しください。",
        "係（かかり）の 人（ひと）が 確認（かくにん）を します。ここでは 手続き（てつづき）が できません。"
        "窓口（まどぐち）に 来て（きて）ください。",
        "Staff need to check your record, so this kiosk cannot help you. Please come to the counter.",
    ),
    RefusalCode.DECEASED: (
        "お亡くなりになった方の証明書は、こちらの端末では発行できません。窓口へお越しください。",
        "亡くなった（なくなった）人（ひと）の 証明書（しょうめいしょ）は ここでは 出せません（だせません）。"
        "窓口（まどぐち）に 来て（きて）ください。",
        "Certificates for a person who has passed away cannot be issued at this kiosk."
        " Please come to the counter.",
    ),
    RefusalCode.MOVED_OUT: (
        "転出された方の証明書は、こちらの端末では発行できません。窓口へお越しください。",
        "ほかの 町（まち）に 引っ越した（ひっこした）人（ひと）の 証明書（しょうめいしょ）は ここでは"
        " 出せません（だせません）。窓口（まどぐち）に 来て（きて）ください。",
        "Certificates for a person who has moved out of the municipality cannot be issued at this kiosk."
        " Please come to the counter.",
    ),
    RefusalCode.MOVING_OUT: (
        "転出の届出をされた方の証明書は、こちらの端末では発行できません。窓口へお越しください。",
        "引っ越し（ひっこし）の 届け（とどけ）を 出した（だした）人（ひと）の 証明書（しょうめいしょ）は"
        " ここでは 出せません（だせません）。窓口（まどぐち）に 来て（きて）ください。",
        "Certificates for a person who has given notice of moving out cannot be issued at this kiosk."
        " Please come to the counter.",
    ),
    RefusalCode.NOT_RESIDENT: (
        "住民登録の状況を職員が確認する必要があるため、こちらの端末では発行できません。窓口へお越しください。",
        "係（かかり）の 人（ひと）が 確認（かくにん）を します。ここでは 証明書（しょうめいしょ）を"
        " 出せません（だせません）。窓口（まどぐち）に 来て（きて）ください。",
        "Staff need to check the residence record, so this certificate cannot be issued at this kiosk."
        " Please come to the counter.",
    ),
    RefusalCode.HOUSEHOLD_MOVING_OUT: (
        "世帯の中に転出された方または転出の届出をされた方がいるため、こちらの端末では発行できません。"
        "窓口へお越しください。",
        "家族（かぞく）に 引っ越し（ひっこし）の 届け（とどけ）を 出した（だした）人（ひと）が います。"
        "ここでは 証明書（しょうめいしょ）を 出せません（だせません）。窓口（まどぐち）に 来て（きて）ください。",
        "Someone in the household is moving or has moved out, so certificates cannot be issued at this"
        " kiosk. Please come to the counter.",
    ),
    RefusalCode.MOVED_IN_TODAY: (
        "転入・転居の届出の当日は、こちらの端末では発行できません。明日以降にご利用いただくか、"
        "窓口へお越しください。",
        "引っ越し（ひっこし）の 届け（とどけ）を 出した（だした）日（ひ）は ここでは 証明書（しょうめいしょ）を"
        " 出せません（だせません）。明日（あした）から 使えます（つかえます）。今日（きょう）は"
        " 窓口（まどぐち）に 来て（きて）ください。",
        "Certificates cannot be issued at this kiosk on the day a move is registered."
        " Please use the kiosk from tomorrow, or come to the counter.",
    ),
    RefusalCode.NAME_CHARACTERS_PENDING: (
        "お名前の文字の登録手続き中のため、こちらの端末では発行できません。窓口へお越しください。",
        "名前（なまえ）の 字（じ）を いま 登録（とうろく）して います。ここでは 証明書（しょうめいしょ）を"
        " 出せません（だせません）。窓口（まどぐち）に 来て（きて）ください。",
        "A character in the name is still being registered, so this certificate cannot be printed here."
        " Please come to the counter.",
    ),
    RefusalCode.RESTRICTED: (
        "この証明書は、こちらの端末では発行できません。窓口へお越しください。",
        "この 証明書（しょうめいしょ）は ここでは 出せません（だせません）。窓口（まどぐち）に 来て（きて）ください。",
        "This certificate cannot be issued at this kiosk. Please come to the counter.",
    ),
    RefusalCode.NOT_IN_HOUSEHOLD: (
        "別の世帯の方の住民票は、こちらの端末では発行できません。窓口へお越しください。",
        "ちがう 世帯（せたい）の 人（ひと）の 住民票（じゅうみんひょう）は ここでは 出せません（だせません）。"
        "窓口（まどぐち）に 来て（きて）ください。",
        "Certificates of residence for people in another household cannot be issued at this kiosk."
        " Please come to the counter.",
    ),
    RefusalCode.OWN_CERTIFICATE_ONLY: (
        "この証明書は、こちらの端末ではご本人の分のみ発行できます。ほかの方の分は窓口へお越しください。",
        "この 証明書（しょうめいしょ）は ここでは 自分（じぶん）の ものだけ 出せます（だせます）。"
        "ほかの 人（ひと）の ものは 窓口（まどぐち）に 来て（きて）ください。",
        "At this kiosk this certificate can be issued only for the card holder."
        " For other people, please come to the counter.",
    ),
    RefusalCode.NO_REGISTERED_SEAL: (
        "印鑑登録がないため、印鑑登録証明書は発行できません。印鑑登録をされる場合は窓口へお越しください。",
        "はんこの 登録（とうろく）が ないので 印鑑登録証明書（いんかんとうろくしょうめいしょ）は"
        " 出せません（だせません）。はんこを 登録（とうろく）するときは 窓口（まどぐち）に 来て（きて）ください。",
        "There is no registered seal, so a seal registration certificate cannot be issued."
        " To register a seal, please come to the counter.",
    ),
    RefusalCode.TAX_YEAR_NOT_AVAILABLE: (
        "こちらの端末で発行できるのは{year_ja}の証明書のみです。ほかの年度の証明書は窓口へお越しください。",
        "ここで 出せる（だせる）のは {year_ja}の 証明書（しょうめいしょ）だけです。ほかの 年（とし）の"
        " ものは 窓口（まどぐち）に 来て（きて）ください。",
        "This kiosk issues tax certificates for fiscal year {year} only."
        " For other years, please come to the counter.",
    ),
}

_SENSITIVE = frozenset({RefusalCode.RESTRICTED})


def _fiscal_year_ja(fiscal_year: int) -> str:
    # A 年度 is named by the era in force at the end of its calendar year (2019年度 = 令和元年度).
    era, year = era_year(date(fiscal_year, 12, 31))
    return f"{era}{'元' if year == 1 else year}年度"


def _refusal(code: RefusalCode, ids: Iterable[int | None] = (), **values: object) -> Refusal:
    ja, easy, en = (text.format(**values) for text in _MESSAGES[code])
    return Refusal(
        code=code.value,
        message_ja=ja,
        message_easy_ja=easy,
        message_en=en,
        sensitive=code in _SENSITIVE,
        resident_ids=tuple(dict.fromkeys(i for i in ids if i is not None)),
    )


def kiosk_tax_fiscal_year(today: date, policy: KioskPolicy = DEFAULT_POLICY) -> int:
    """The 年度 whose tax certificates the kiosk issues today."""
    fiscal_year = fiscal_year_of(today)
    month, day = policy.tax_year_opens
    opens = date(fiscal_year if month >= 4 else fiscal_year + 1, month, day)
    return fiscal_year if today >= opens else fiscal_year - 1


def _certificate_name(certificate: object) -> str:
    value = getattr(certificate, "value", certificate)
    return str(value)


def _key(person: ResidentLike) -> tuple[str, int]:
    return ("id", person.id) if person.id is not None else ("object", id(person))


def _unique(people: Iterable[ResidentLike]) -> list[ResidentLike]:
    unique: dict[tuple[str, int], ResidentLike] = {}
    for person in people:
        unique.setdefault(_key(person), person)
    return list(unique.values())


def kiosk_refusals(
    certificate: CertificateKind | str,
    applicant: ResidentLike,
    targets: Sequence[ResidentLike],
    *,
    household: Sequence[ResidentLike],
    today: date,
    has_active_seal: bool = False,
    fiscal_year: int | None = None,
    policy: KioskPolicy = DEFAULT_POLICY,
) -> list[Refusal]:
    """Why the kiosk must not issue this certificate; empty when it may.

    certificate: "juminhyo" | "inkan" | "tax" (a CertificateType enum member works too).
    applicant:   the card holder, already identified by the card.
    targets:     the people the certificate is for (for 住民票, the chosen household members).
    household:   everyone on the applicant's household record, including moved-out entries.
    has_active_seal: whether the applicant has an active 印鑑登録 (for "inkan").
    fiscal_year: the 年度 asked for (for "tax"); None = the kiosk's current one.

    At most one refusal per code, in a stable order; raises ValueError with no targets.
    """
    if not targets:
        raise ValueError("a certificate request needs at least one target resident")
    kind = _certificate_name(certificate)
    if kind not in _KNOWN_CERTIFICATES:
        return [_refusal(RefusalCode.UNSUPPORTED_CERTIFICATE)]

    found: dict[RefusalCode, list[int | None]] = {}

    def refuse(code: RefusalCode, *people: ResidentLike) -> None:
        found.setdefault(code, []).extend(p.id for p in people)

    people = _unique([applicant, *targets])
    members = _unique([*household, applicant, *targets])

    # The applicant: age.
    if applicant.birth_date is None:
        refuse(RefusalCode.BIRTH_DATE_UNKNOWN, applicant)
    elif today < applicant.birth_date or age_on(applicant.birth_date, today) < policy.min_applicant_age:
        refuse(RefusalCode.UNDER_AGE, applicant)

    # Everyone the certificate is about (and the applicant): status, 転入 day, names.
    for person in people:
        status = str(person.status)
        if status == ResidentStatus.DECEASED:
            refuse(RefusalCode.DECEASED, person)
        elif status == ResidentStatus.MOVED_OUT:
            refuse(RefusalCode.MOVED_OUT, person)
        elif status == ResidentStatus.MOVING_OUT:
            refuse(RefusalCode.MOVING_OUT, person)
        elif status != ResidentStatus.RESIDENT:
            refuse(RefusalCode.NOT_RESIDENT, person)
        if today in (person.became_resident_on, person.address_set_on):
            refuse(RefusalCode.MOVED_IN_TODAY, person)
        if Suppression.GAIJI_PENDING in person.suppressions:
            refuse(RefusalCode.NAME_CHARACTERS_PENDING, person)

    # The whole household: a pending or fresh 転出 of anyone else, and 抑止 flags on anyone.
    recent = today - timedelta(days=policy.recent_move_out_days)
    involved = {_key(person) for person in people}
    for member in members:
        status = str(member.status)
        if _key(member) not in involved and (
            status == ResidentStatus.MOVING_OUT
            or (
                status == ResidentStatus.MOVED_OUT
                and (member.status_changed_on is None or member.status_changed_on >= recent)
            )
        ):
            refuse(RefusalCode.HOUSEHOLD_MOVING_OUT, member)
        if any(flag != Suppression.GAIJI_PENDING for flag in member.suppressions):
            refuse(RefusalCode.RESTRICTED, member)

    # Whose certificate it may be.
    if kind == "juminhyo":
        strangers = [t for t in targets if t.household_id != applicant.household_id]
        if strangers:
            refuse(RefusalCode.NOT_IN_HOUSEHOLD, *strangers)
    else:
        others = [t for t in targets if _key(t) != _key(applicant)]
        if others:
            refuse(RefusalCode.OWN_CERTIFICATE_ONLY, *others)

    if kind == "inkan" and not has_active_seal:
        refuse(RefusalCode.NO_REGISTERED_SEAL, applicant)

    values: dict[str, object] = {"age": policy.min_applicant_age}
    if kind == "tax":
        current = kiosk_tax_fiscal_year(today, policy)
        values.update(year=current, year_ja=_fiscal_year_ja(current))
        if fiscal_year is not None and fiscal_year != current:
            refuse(RefusalCode.TAX_YEAR_NOT_AVAILABLE, applicant)

    return [_refusal(code, found[code], **values) for code in RefusalCode if code in found]


def for_display(refusals: Sequence[Refusal]) -> list[Refusal]:
    """What the kiosk may show: the refusals as they are, or — if any is sensitive — only the
    neutral one, without resident ids, so nothing beside it hints at the reason."""
    if any(r.sensitive for r in refusals):
        return [_refusal(RefusalCode.RESTRICTED)]
    return [Refusal(r.code, r.message_ja, r.message_easy_ja, r.message_en, r.sensitive) for r in refusals]
