"""Kiosk refusal rules for certificate requests: every refusal, the household rule for 転出,
and sensitive reasons never shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from app.domain.eligibility import (
    DEFAULT_POLICY,
    KioskPolicy,
    Refusal,
    RefusalCode,
    ResidentFacts,
    for_display,
    kiosk_refusals,
    kiosk_tax_fiscal_year,
)
from app.domain.registry import ResidentStatus, Sex, Suppression
from app.models import Resident

TODAY = date(2025, 10, 15)
HOUSEHOLD = 7

ADULT = ResidentFacts(
    id=1, household_id=HOUSEHOLD, birth_date=date(1980, 5, 5), became_resident_on=date(2010, 1, 1)
)
SPOUSE = replace(ADULT, id=2, birth_date=date(1982, 8, 8))
CHILD = replace(ADULT, id=3, birth_date=date(2015, 6, 1), became_resident_on=date(2015, 6, 1))
FAMILY = (ADULT, SPOUSE, CHILD)
STRANGER = replace(ADULT, id=9, household_id=99)


def codes(refusals: list[Refusal]) -> list[str]:
    return [r.code for r in refusals]


def check(
    certificate: str = "juminhyo",
    applicant: ResidentFacts = ADULT,
    targets: tuple[ResidentFacts, ...] | None = None,
    household: tuple[ResidentFacts, ...] = FAMILY,
    **kwargs: object,
) -> list[Refusal]:
    return kiosk_refusals(
        certificate,
        applicant,
        targets if targets is not None else (applicant,),
        household=household,
        today=kwargs.pop("today", TODAY),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


# -- nothing to refuse -----------------------------------------------------------------------------
def test_an_ordinary_request_is_allowed() -> None:
    assert check() == []
    assert check(targets=FAMILY) == []
    assert check("inkan", has_active_seal=True) == []
    assert check("tax") == []
    assert check("tax", fiscal_year=2025) == []


def test_enum_like_certificate_types_are_accepted() -> None:
    class Kind:
        value = "juminhyo"

    assert check(Kind()) == []  # type: ignore[arg-type]


def test_orm_residents_satisfy_the_protocol() -> None:
    def resident(rid: int, birth: date, **extra: object) -> Resident:
        return Resident(
            id=rid,
            atena_number=f"{rid:08d}",
            household_id=HOUSEHOLD,
            relationship="世帯主",
            family_name="山田",
            sex=Sex.MALE,
            address="どこか",
            birth_date=birth,
            **extra,
        )

    applicant = resident(1, date(1980, 1, 1))
    child = resident(2, date(2015, 1, 1), suppressions=[Suppression.SUPPORT_MEASURE.value])
    assert kiosk_refusals("juminhyo", applicant, [applicant], household=[applicant], today=TODAY) == []
    refusals = kiosk_refusals("juminhyo", applicant, [applicant], household=[applicant, child], today=TODAY)
    assert codes(refusals) == [RefusalCode.RESTRICTED]


def test_no_targets_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        kiosk_refusals("juminhyo", ADULT, [], household=FAMILY, today=TODAY)


def test_unknown_certificate_type() -> None:
    assert codes(check("koseki")) == [RefusalCode.UNSUPPORTED_CERTIFICATE]


# -- the applicant's age ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("birth", "refused"),
    [
        (date(2010, 10, 16), False),  # reaches 15 on 2025-10-15: today
        (date(2010, 10, 17), True),  # reaches 15 tomorrow
        (date(2010, 10, 15), False),
        (date(2015, 6, 1), True),
    ],
)
def test_under_15_cannot_use_the_kiosk(birth: date, refused: bool) -> None:
    applicant = replace(ADULT, birth_date=birth)
    result = check(applicant=applicant, household=(applicant, SPOUSE))
    assert codes(result) == ([RefusalCode.UNDER_AGE] if refused else [])
    if refused:
        assert "15歳未満" in result[0].message_ja
        assert result[0].resident_ids == (1,)


def test_under_15_applies_to_the_card_holder_not_the_targets() -> None:
    assert check(targets=(CHILD,)) == []
    assert codes(check(applicant=CHILD, targets=(CHILD,))) == [RefusalCode.UNDER_AGE]


def test_minimum_age_is_a_setting() -> None:
    applicant = replace(ADULT, birth_date=date(2008, 1, 1))
    result = check(applicant=applicant, policy=KioskPolicy(min_applicant_age=18))
    assert codes(result) == [RefusalCode.UNDER_AGE]
    assert "18歳未満" in result[0].message_ja and "18" in result[0].message_en


def test_unknown_birth_date_is_referred_to_the_counter() -> None:
    applicant = replace(ADULT, birth_date=None)
    assert codes(check(applicant=applicant)) == [RefusalCode.BIRTH_DATE_UNKNOWN]


def test_birth_after_today_counts_as_under_age() -> None:
    applicant = replace(ADULT, birth_date=TODAY + timedelta(days=1))
    assert codes(check(applicant=applicant)) == [RefusalCode.UNDER_AGE]


# -- status of the people involved -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (ResidentStatus.DECEASED, RefusalCode.DECEASED),
        (ResidentStatus.MOVED_OUT, RefusalCode.MOVED_OUT),
        (ResidentStatus.MOVING_OUT, RefusalCode.MOVING_OUT),
        (ResidentStatus.REMOVED, RefusalCode.NOT_RESIDENT),
        ("something_new", RefusalCode.NOT_RESIDENT),
    ],
)
def test_status_of_a_target(status: str, code: RefusalCode) -> None:
    child = replace(CHILD, status=status, status_changed_on=TODAY - timedelta(days=300))
    result = check(targets=(ADULT, child), household=(ADULT, SPOUSE, child))
    assert codes(result) == [code]
    assert result[0].resident_ids == (3,)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (ResidentStatus.DECEASED, RefusalCode.DECEASED),
        (ResidentStatus.MOVED_OUT, RefusalCode.MOVED_OUT),
        (ResidentStatus.MOVING_OUT, RefusalCode.MOVING_OUT),
    ],
)
def test_status_of_the_applicant(status: str, code: RefusalCode) -> None:
    applicant = replace(ADULT, status=status, status_changed_on=TODAY - timedelta(days=300))
    for certificate in ("juminhyo", "inkan", "tax"):
        result = check(certificate, applicant=applicant, household=(applicant, SPOUSE), has_active_seal=True)
        assert codes(result) == [code]


# -- the household rule for 転出 --------------------------------------------------------------------
def test_a_member_moving_out_refers_the_whole_household() -> None:
    leaving = replace(SPOUSE, status=ResidentStatus.MOVING_OUT, status_changed_on=TODAY + timedelta(days=5))
    household = (ADULT, leaving, CHILD)
    # Even when the person moving out is not asked for, and for every certificate type.
    assert codes(check(targets=(ADULT, CHILD), household=household)) == [RefusalCode.HOUSEHOLD_MOVING_OUT]
    assert codes(check(targets=(CHILD,), household=household)) == [RefusalCode.HOUSEHOLD_MOVING_OUT]
    assert codes(check("inkan", household=household, has_active_seal=True)) == [
        RefusalCode.HOUSEHOLD_MOVING_OUT
    ]
    assert codes(check("tax", household=household)) == [RefusalCode.HOUSEHOLD_MOVING_OUT]
    # Asking for the leaver too: refused for them, without a second household message.
    assert codes(check(targets=(ADULT, leaving), household=household)) == [RefusalCode.MOVING_OUT]
    # The household's members are told, but not who.
    message = check(household=household)[0]
    assert message.resident_ids == (2,)
    assert "世帯" in message.message_ja and "household" in message.message_en


def test_a_member_who_moved_out_long_ago_does_not_block_the_household() -> None:
    left = replace(SPOUSE, status=ResidentStatus.MOVED_OUT, status_changed_on=TODAY - timedelta(days=30))
    assert check(targets=(ADULT, CHILD), household=(ADULT, left, CHILD)) == []
    # … but asking for their record is refused.
    assert codes(check(targets=(left,), household=(ADULT, left, CHILD))) == [RefusalCode.MOVED_OUT]


def test_a_move_out_today_or_of_unknown_date_blocks_the_household() -> None:
    for when in (TODAY, None):
        left = replace(SPOUSE, status=ResidentStatus.MOVED_OUT, status_changed_on=when)
        assert codes(check(household=(ADULT, left, CHILD))) == [RefusalCode.HOUSEHOLD_MOVING_OUT]


def test_recent_move_out_window_is_a_setting() -> None:
    left = replace(SPOUSE, status=ResidentStatus.MOVED_OUT, status_changed_on=TODAY - timedelta(days=10))
    household = (ADULT, left, CHILD)
    assert check(household=household) == []
    policy = KioskPolicy(recent_move_out_days=14)
    assert codes(check(household=household, policy=policy)) == [RefusalCode.HOUSEHOLD_MOVING_OUT]


def test_a_deceased_member_does_not_block_the_household() -> None:
    gone = replace(SPOUSE, status=ResidentStatus.DECEASED, status_changed_on=TODAY - timedelta(days=3))
    assert check(targets=(ADULT, CHILD), household=(ADULT, gone, CHILD)) == []
    assert codes(check(targets=(gone,), household=(ADULT, gone, CHILD))) == [RefusalCode.DECEASED]


# -- the day of 転入 / 転居 -----------------------------------------------------------------------
def test_the_day_of_moving_in_is_refused() -> None:
    arrived = replace(ADULT, became_resident_on=TODAY, address_set_on=TODAY)
    result = check(applicant=arrived, household=(arrived,))
    assert codes(result) == [RefusalCode.MOVED_IN_TODAY]
    assert "明日以降" in result[0].message_ja
    # The next day is fine.
    assert check(applicant=arrived, household=(arrived,), today=TODAY + timedelta(days=1)) == []


def test_the_day_of_a_move_within_the_town_is_refused() -> None:
    moved = replace(ADULT, address_set_on=TODAY)
    assert codes(check(applicant=moved, household=(moved,))) == [RefusalCode.MOVED_IN_TODAY]


def test_a_target_who_moved_in_today_is_refused() -> None:
    newcomer = replace(SPOUSE, became_resident_on=TODAY, address_set_on=TODAY)
    household = (ADULT, newcomer)
    assert codes(check(targets=(ADULT, newcomer), household=household)) == [RefusalCode.MOVED_IN_TODAY]
    assert check(targets=(ADULT,), household=household) == []


# -- 抑止 flags ------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", [Suppression.SUPPORT_MEASURE.value, Suppression.OTHER.value, "future_flag"])
@pytest.mark.parametrize("who", ["applicant", "target", "member"])
def test_suppression_on_anyone_in_the_household_refers_to_the_counter(flag: str, who: str) -> None:
    applicant, spouse = ADULT, SPOUSE
    if who == "applicant":
        applicant = replace(ADULT, suppressions=(flag,))
    else:
        spouse = replace(SPOUSE, suppressions=(flag,))
    targets = (applicant, spouse) if who == "target" else (applicant,)
    for certificate in ("juminhyo", "inkan", "tax"):
        result = check(
            certificate,
            applicant=applicant,
            targets=targets if certificate == "juminhyo" else (applicant,),
            household=(applicant, spouse, CHILD),
            has_active_seal=True,
        )
        assert codes(result) == [RefusalCode.RESTRICTED]
        assert result[0].sensitive


SENSITIVE_WORDS = (
    "支援",
    "措置",
    "DV",
    "暴力",
    "保護",
    "制限",
    "抑止",
    "support",
    "protect",
    "violence",
    "restrict",
)


def test_support_measure_messages_do_not_reveal_the_reason() -> None:
    flagged = replace(SPOUSE, suppressions=(Suppression.SUPPORT_MEASURE.value,))
    (refusal,) = check(household=(ADULT, flagged, CHILD))
    for text in (refusal.message_ja, refusal.message_easy_ja, refusal.message_en, refusal.code):
        for word in SENSITIVE_WORDS:
            assert word.lower() not in text.lower()
    assert refusal.message_ja == "この証明書は、こちらの端末では発行できません。窓口へお越しください。"


def test_for_display_collapses_to_the_neutral_message_when_anything_is_sensitive() -> None:
    flagged = replace(SPOUSE, suppressions=(Suppression.SUPPORT_MEASURE.value,))
    young = replace(ADULT, birth_date=date(2012, 1, 1))
    full = check(applicant=young, targets=(young, flagged), household=(young, flagged))
    assert set(codes(full)) == {RefusalCode.UNDER_AGE, RefusalCode.RESTRICTED}
    shown = for_display(full)
    assert codes(shown) == [RefusalCode.RESTRICTED]
    assert shown[0].resident_ids == ()
    # Nothing sensitive: shown as is, without resident ids.
    plain = check(applicant=young, household=(young,))
    assert codes(for_display(plain)) == [RefusalCode.UNDER_AGE]
    assert for_display(plain)[0].resident_ids == ()
    assert for_display([]) == []


# -- 外字 ------------------------------------------------------------------------------------------
def test_unregistered_characters_in_a_printed_name() -> None:
    gaiji = replace(SPOUSE, suppressions=(Suppression.GAIJI_PENDING.value,))
    household = (ADULT, gaiji, CHILD)
    result = check(targets=(ADULT, gaiji), household=household)
    assert codes(result) == [RefusalCode.NAME_CHARACTERS_PENDING]
    assert not result[0].sensitive
    # Not printed, not a problem; GAIJI_PENDING is not an 抑止 that blocks the household.
    assert check(targets=(ADULT, CHILD), household=household) == []
    gaiji_applicant = replace(ADULT, suppressions=(Suppression.GAIJI_PENDING.value,))
    assert codes(
        check("inkan", applicant=gaiji_applicant, household=(gaiji_applicant,), has_active_seal=True)
    ) == [RefusalCode.NAME_CHARACTERS_PENDING]


# -- whose certificate -----------------------------------------------------------------------------
def test_juminhyo_only_for_the_own_household() -> None:
    result = check(targets=(ADULT, STRANGER))
    assert codes(result) == [RefusalCode.NOT_IN_HOUSEHOLD]
    assert result[0].resident_ids == (9,)


@pytest.mark.parametrize("certificate", ["inkan", "tax"])
def test_seal_and_tax_certificates_only_for_the_card_holder(certificate: str) -> None:
    result = check(certificate, targets=(SPOUSE,), has_active_seal=True)
    assert codes(result) == [RefusalCode.OWN_CERTIFICATE_ONLY]
    assert check(certificate, targets=(ADULT,), has_active_seal=True) == []
    # The same person passed as another object with the same id is still the card holder.
    assert check(certificate, targets=(replace(ADULT),), has_active_seal=True) == []


# -- 印鑑登録証明書 --------------------------------------------------------------------------------
def test_seal_certificate_needs_an_active_seal() -> None:
    result = check("inkan", has_active_seal=False)
    assert codes(result) == [RefusalCode.NO_REGISTERED_SEAL]
    assert "印鑑登録" in result[0].message_ja
    # Other certificates do not care.
    assert check("juminhyo", has_active_seal=False) == []


def test_seal_certificate_for_a_14_year_old_is_refused_for_age() -> None:
    young = replace(ADULT, birth_date=date(2011, 1, 1))
    assert codes(check("inkan", applicant=young, household=(young,), has_active_seal=True)) == [
        RefusalCode.UNDER_AGE
    ]


# -- 課税・所得証明書 ------------------------------------------------------------------------------
def test_tax_certificate_only_for_the_current_fiscal_year() -> None:
    result = check("tax", fiscal_year=2024)
    assert codes(result) == [RefusalCode.TAX_YEAR_NOT_AVAILABLE]
    assert "令和7年度" in result[0].message_ja
    assert "2025" in result[0].message_en
    assert codes(check("tax", fiscal_year=2026)) == [RefusalCode.TAX_YEAR_NOT_AVAILABLE]


def test_fiscal_year_changes_on_1_april() -> None:
    assert kiosk_tax_fiscal_year(date(2026, 3, 31)) == 2025
    assert kiosk_tax_fiscal_year(date(2026, 4, 1)) == 2026
    assert check("tax", fiscal_year=2025, today=date(2026, 3, 31)) == []
    assert codes(check("tax", fiscal_year=2025, today=date(2026, 4, 1))) == [
        RefusalCode.TAX_YEAR_NOT_AVAILABLE
    ]


def test_tax_year_opening_date_is_a_setting() -> None:
    june = KioskPolicy(tax_year_opens=(6, 1))
    assert kiosk_tax_fiscal_year(date(2026, 5, 31), june) == 2025
    assert kiosk_tax_fiscal_year(date(2026, 6, 1), june) == 2026
    assert kiosk_tax_fiscal_year(date(2027, 2, 1), june) == 2026
    assert check("tax", fiscal_year=2025, today=date(2026, 5, 1), policy=june) == []
    # An opening date in January–March belongs to the end of the fiscal year.
    late = KioskPolicy(tax_year_opens=(1, 15))
    assert kiosk_tax_fiscal_year(date(2026, 1, 14), late) == 2024
    assert kiosk_tax_fiscal_year(date(2026, 1, 15), late) == 2025


def test_reiwa_first_year_is_written_gannen() -> None:
    result = check("tax", fiscal_year=2018, today=date(2019, 6, 1))
    assert "令和元年度" in result[0].message_ja


# -- messages --------------------------------------------------------------------------------------
def every_refusal() -> list[Refusal]:
    flagged = replace(
        SPOUSE, suppressions=(Suppression.SUPPORT_MEASURE.value, Suppression.GAIJI_PENDING.value)
    )
    young = replace(
        ADULT,
        birth_date=date(2012, 1, 1),
        became_resident_on=TODAY,
        suppressions=(Suppression.GAIJI_PENDING.value,),
    )
    dead = replace(CHILD, id=4, status=ResidentStatus.DECEASED)
    gone = replace(
        CHILD, id=5, status=ResidentStatus.MOVED_OUT, status_changed_on=TODAY - timedelta(days=100)
    )
    leaving = replace(CHILD, id=6, status=ResidentStatus.MOVING_OUT)
    removed = replace(CHILD, id=8, status=ResidentStatus.REMOVED)
    other_leaving = replace(CHILD, id=10, status=ResidentStatus.MOVING_OUT)
    result: list[Refusal] = []
    result += check(
        applicant=young,
        targets=(young, flagged, dead, gone, leaving, removed, STRANGER),
        household=(young, flagged, dead, gone, leaving, removed, other_leaving),
    )
    result += check("inkan", targets=(SPOUSE,))
    result += check("tax", fiscal_year=2000)
    result += check("unknown")
    result += check(applicant=replace(ADULT, birth_date=None))
    return result


def test_every_refusal_code_is_reachable_and_tested_here() -> None:
    assert {r.code for r in every_refusal()} == {code.value for code in RefusalCode}


def test_messages_are_kind_and_refer_to_the_counter() -> None:
    for refusal in every_refusal():
        assert refusal.message_ja.endswith("窓口へお越しください。"), refusal
        assert refusal.message_easy_ja.endswith("窓口（まどぐち）に 来て（きて）ください。"), refusal
        assert "counter" in refusal.message_en and refusal.message_en.endswith("."), refusal
        assert "{" not in refusal.message_ja + refusal.message_easy_ja + refusal.message_en


def test_one_refusal_per_code_in_a_stable_order() -> None:
    dead = replace(SPOUSE, status=ResidentStatus.DECEASED)
    dead_too = replace(CHILD, status=ResidentStatus.DECEASED)
    result = check(targets=(ADULT, dead, dead_too), household=(ADULT, dead, dead_too))
    assert codes(result) == [RefusalCode.DECEASED]
    assert result[0].resident_ids == (2, 3)
    full = check(
        applicant=replace(ADULT, birth_date=date(2012, 1, 1), became_resident_on=TODAY),
        targets=None,
        household=(ADULT,),
    )
    assert codes(full) == [RefusalCode.UNDER_AGE, RefusalCode.MOVED_IN_TODAY]


def test_default_policy_values() -> None:
    assert DEFAULT_POLICY.min_applicant_age == 15
    assert DEFAULT_POLICY.tax_year_opens == (4, 1)
    assert DEFAULT_POLICY.recent_move_out_days == 0
