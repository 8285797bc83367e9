"""Certificate rules: 発行番号, fees, tax years, 住民票 options and paging, verification URLs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from app.domain.certificates import (
    DEFAULT_FEES,
    CertificateType,
    JuminhyoLayout,
    JuminhyoOptions,
    TaxCertificateKind,
    certification_sentence,
    copy_serials,
    fee_for,
    fees_with_overrides,
    fiscal_year_label,
    fiscal_year_of,
    income_year,
    income_year_label,
    issue_number,
    juminhyo_sheets,
    kiosk_tax_fiscal_year,
    parse_issue_number,
    select_members,
    split_sheets,
    tax_certificate_kind,
    total_fee,
)
from app.printing.verify import (
    PublicVerification,
    hash_prefix_matches,
    issue_number_from_slug,
    issue_number_slug,
    parse_verification_url,
    verification_url,
)

# --- 発行番号 -------------------------------------------------------------------------------------


def test_issue_number_has_the_standard_form() -> None:
    assert issue_number(date(2020, 5, 2), "●●市", "本庁1", "プリンタ001", 11, 1, 2) == (
        "20200502 ●●市 本庁1 プリンタ001 011 1/2"
    )
    assert (
        issue_number(date(2026, 4, 21), "993417", "K01", "P01", 12, 1, 1) == "20260421 993417 K01 P01 012 1/1"
    )


def test_issue_number_serial_grows_past_three_digits() -> None:
    assert issue_number(date(2026, 4, 21), "993417", "K01", "P01", 1234, 2, 2).endswith(" 1234 2/2")


def test_issue_number_with_unknown_printer_leaves_it_blank() -> None:
    number = issue_number(date(2026, 4, 21), "993417", "K01", "", 5, 1, 1)
    assert number == "20260421 993417 K01  005 1/1"
    parts = parse_issue_number(number)
    assert parts.printer == "" and parts.serial == 5


@pytest.mark.parametrize(
    ("municipality", "terminal", "printer", "page", "pages"),
    [
        ("99 3417", "K01", "P01", 1, 1),  # space inside a part
        ("993417", "", "P01", 1, 1),  # empty terminal
        ("993417", "K_01", "P01", 1, 1),  # "_" is the URL separator
        ("993417", "K01", "P/1", 1, 1),  # "/" is the page separator
        ("993417", "K01", "P01", 0, 1),
        ("993417", "K01", "P01", 3, 2),
    ],
)
def test_issue_number_rejects_bad_parts(
    municipality: str, terminal: str, printer: str, page: int, pages: int
) -> None:
    with pytest.raises(ValueError):
        issue_number(date(2026, 4, 21), municipality, terminal, printer, 1, page, pages)


def test_issue_number_round_trips_and_copy_key_drops_the_page() -> None:
    number = "20260421 993417 K01 P01 012 2/3"
    parts = parse_issue_number(number)
    assert (parts.day, parts.municipality, parts.terminal, parts.printer) == (
        date(2026, 4, 21),
        "993417",
        "K01",
        "P01",
    )
    assert (parts.serial, parts.page, parts.pages) == (12, 2, 3)
    assert str(parts) == number
    assert parts.copy_key == "20260421 993417 K01 P01 012"
    for bad in (
        "20260421 993417 K01 P01 012",
        "2026042 993417 K01 P01 012 1/1",
        "20260421 993417 K01 P01 012 3/2",
    ):
        with pytest.raises(ValueError):
            parse_issue_number(bad)


def test_each_copy_has_its_own_serial() -> None:
    assert copy_serials(12, 3) == [12, 13, 14]
    with pytest.raises(ValueError):
        copy_serials(12, 0)


# --- Fees -------------------------------------------------------------------------------------------


def test_default_fees_are_300_yen() -> None:
    assert DEFAULT_FEES == {
        CertificateType.JUMINHYO: 300,
        CertificateType.INKAN: 300,
        CertificateType.TAX: 300,
    }
    assert fee_for(CertificateType.INKAN) == 300
    assert total_fee(CertificateType.JUMINHYO, 3) == 900


def test_location_overrides_fees() -> None:
    overrides = {"juminhyo": 200, "tax": 0}
    assert fees_with_overrides(overrides) == {
        CertificateType.JUMINHYO: 200,
        CertificateType.INKAN: 300,
        CertificateType.TAX: 0,
    }
    assert total_fee(CertificateType.JUMINHYO, 2, overrides) == 400
    assert fee_for(CertificateType.INKAN, overrides) == 300


@pytest.mark.parametrize(
    "overrides", [{"koseki": 450}, {"juminhyo": -1}, {"juminhyo": "300"}, {"inkan": True}]
)
def test_bad_fee_overrides_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        fees_with_overrides(overrides)


def test_total_fee_needs_a_copy() -> None:
    with pytest.raises(ValueError):
        total_fee(CertificateType.JUMINHYO, 0)


def test_labels_in_three_languages() -> None:
    kind = CertificateType.JUMINHYO
    assert kind.label("ja") == "住民票の写し"
    assert "residence" in kind.label("en")
    assert kind.label("ja-easy").startswith("じゅうみんひょう")
    assert all(k.label_ja and k.label_en and k.label_easy for k in CertificateType)


# --- Tax years -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "fiscal_year"),
    [
        (date(2026, 3, 31), 2025),
        (date(2026, 4, 1), 2026),
        (date(2026, 12, 31), 2026),
        (date(2027, 1, 1), 2026),
    ],
)
def test_fiscal_year_starts_on_april_first(day: date, fiscal_year: int) -> None:
    assert fiscal_year_of(day) == fiscal_year
    assert kiosk_tax_fiscal_year(day) == fiscal_year


def test_kiosk_switch_day_is_a_setting() -> None:
    # Many municipalities switch only after 当初課税 in June.
    june = (6, 1)
    assert kiosk_tax_fiscal_year(date(2026, 5, 31), june) == 2025
    assert kiosk_tax_fiscal_year(date(2026, 6, 1), june) == 2026
    assert kiosk_tax_fiscal_year(date(2027, 3, 31), june) == 2026


def test_tax_certificate_shows_the_previous_years_income() -> None:
    assert income_year(2026) == 2025
    assert fiscal_year_label(2026) == "令和8年度"
    assert income_year_label(2026) == "令和7年中"
    assert fiscal_year_label(2019) == "令和元年度"
    assert fiscal_year_label(1989) == "平成元年度"
    assert income_year_label(2020) == "令和元年中"


def test_taxable_or_not_by_amount() -> None:
    assert tax_certificate_kind(0, 0) is TaxCertificateKind.NON_TAXABLE
    assert tax_certificate_kind(3500, 1500) is TaxCertificateKind.TAXABLE
    assert tax_certificate_kind(0, 1) is TaxCertificateKind.TAXABLE
    assert TaxCertificateKind.TAXABLE.document_title == "課税証明書"
    assert TaxCertificateKind.NON_TAXABLE.document_title == "非課税証明書"
    with pytest.raises(ValueError):
        tax_certificate_kind(-1, 0)


# --- 住民票 options and paging ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    resident_id: int | None


def test_optional_items_are_omitted_by_default() -> None:
    options = JuminhyoOptions()
    assert options.whole_household
    assert options.items_shown() == ()
    assert options.layout is JuminhyoLayout.HOUSEHOLD
    shown = JuminhyoOptions(show_honseki=True, show_my_number=True).items_shown()
    assert shown == ("honseki", "my_number")


def test_chosen_members_print_in_household_order() -> None:
    household = [_Member(10), _Member(11), _Member(12)]
    assert select_members(JuminhyoOptions(), household) == household
    assert select_members(JuminhyoOptions(member_ids=(12, 10)), household) == [_Member(10), _Member(12)]
    with pytest.raises(ValueError):
        select_members(JuminhyoOptions(member_ids=(99,)), household)
    with pytest.raises(ValueError):
        JuminhyoOptions(member_ids=())
    with pytest.raises(ValueError):
        JuminhyoOptions(member_ids=(10, 10))


@pytest.mark.parametrize(
    ("persons", "sheets"), [(1, [1]), (4, [4]), (5, [4, 1]), (6, [4, 2]), (8, [4, 4]), (9, [4, 4, 1])]
)
def test_household_form_has_four_persons_a_sheet(persons: int, sheets: list[int]) -> None:
    split = juminhyo_sheets(list(range(persons)), JuminhyoLayout.HOUSEHOLD)
    assert [len(sheet) for sheet in split] == sheets
    assert [person for sheet in split for person in sheet] == list(range(persons))


def test_individual_form_has_one_person_a_sheet() -> None:
    assert juminhyo_sheets(["a", "b", "c"], JuminhyoLayout.INDIVIDUAL) == [["a"], ["b"], ["c"]]


def test_splitting_needs_someone() -> None:
    with pytest.raises(ValueError):
        split_sheets([], 4)
    with pytest.raises(ValueError):
        split_sheets([1], 0)


def test_certification_sentence_depends_on_scope() -> None:
    assert (
        certification_sentence(CertificateType.JUMINHYO)
        == "この写しは、世帯全員の住民票の原本と相違ないことを証明する。"
    )
    assert certification_sentence(CertificateType.JUMINHYO, whole_household=False) == (
        "この写しは、住民票の原本と相違ないことを証明する。"
    )
    assert "印影" in certification_sentence(CertificateType.INKAN)


# --- Verification URLs ---------------------------------------------------------------------------------

SHA = "0a0b6f74eede2b4b" + "0" * 48


def test_verification_url_holds_only_the_issue_number_and_a_hash_prefix() -> None:
    url = verification_url("https://aobadai.example.jp/", "20260421 993417 K01 P01 012 1/2", SHA)
    assert url == "https://aobadai.example.jp/verify/20260421_993417_K01_P01_012_1-2?h=0a0b6f74eede2b4b"
    ref = parse_verification_url(url)
    assert ref.issue_number == "20260421 993417 K01 P01 012 1/2"
    assert ref.copy_key == "20260421 993417 K01 P01 012"
    assert hash_prefix_matches(SHA, ref.hash_prefix)
    assert not hash_prefix_matches("f" * 64, ref.hash_prefix)


def test_non_ascii_parts_are_percent_encoded_and_come_back() -> None:
    number = "20200502 ●●市 本庁1 プリンタ001 011 1/2"
    slug = issue_number_slug(number)
    assert slug.isascii()
    assert issue_number_from_slug(slug) == number
    url = verification_url("https://example.jp/base", number, SHA)
    assert parse_verification_url(url).issue_number == number


@pytest.mark.parametrize(
    "url",
    [
        "https://example.jp/verify/20260421_993417_K01_P01_012_1-2",  # no hash
        "https://example.jp/verify/20260421_993417_K01_P01_012_1-2?h=xyz",
        "https://example.jp/check/20260421_993417_K01_P01_012_1-2?h=0a0b6f74eede2b4b",
        "https://example.jp/verify/20260421_993417_K01?h=0a0b6f74eede2b4b",
    ],
)
def test_bad_verification_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_verification_url(url)


def test_verification_needs_http_and_a_full_hash() -> None:
    with pytest.raises(ValueError):
        verification_url("ftp://example.jp", "20260421 993417 K01 P01 012 1/1", SHA)
    with pytest.raises(ValueError):
        verification_url("https://example.jp", "20260421 993417 K01 P01 012 1/1", "abc")


def test_public_verification_has_no_personal_data_and_matches_its_copy() -> None:
    record = PublicVerification(
        issue_number="20260421 993417 K01 P01 012 1/2",
        certificate_type=CertificateType.JUMINHYO,
        issued_on=date(2026, 4, 21),
        municipality_name="青葉台町",
        pages=2,
        document_sha256=SHA,
    )
    shown = record.as_dict()
    assert set(shown) == {
        "issue_number",
        "certificate_type",
        "certificate_label",
        "issued_on",
        "municipality",
        "pages",
        "document_sha256",
        "reprint",
    }
    page_two = parse_verification_url(
        verification_url("https://example.jp", "20260421 993417 K01 P01 012 2/2", SHA)
    )
    assert record.matches(page_two)
    other_copy = parse_verification_url(
        verification_url("https://example.jp", "20260421 993417 K01 P01 013 1/2", SHA)
    )
    assert not record.matches(other_copy)
