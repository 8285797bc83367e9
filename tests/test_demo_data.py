from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, func, select, text
from sqlmodel import Session, SQLModel

from app.db import Database
from app.demo import DEMO_ACCOUNTS, DEMO_MUNICIPALITY_CODE, DemoDataExists, DemoSummary, generate_demo
from app.demo._town import age_on, fiscal_year_of
from app.demo.generator import municipality_check_digit
from app.domain import atena
from app.domain.registry import RELATIONSHIPS, DeviceKind, ResidentStatus, SiteKind, Suppression
from app.domain.text import search_key
from app.domain.wareki import format_seireki, format_wareki
from app.models import (
    Device,
    Household,
    Location,
    Municipality,
    Resident,
    SealRegistration,
    Site,
    StaffUser,
    TaxRecord,
)
from app.services.audit import verify
from app.services.passwords import hash_password
from app.services.staff import group_names_of
from tests.conftest import drop_postgres, fresh_postgres

TODAY = date(2026, 11, 21)
SEED = 20261121


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def _copy_db(template: Path, path: Path) -> Database:
    shutil.copyfile(template, path)
    return Database(f"sqlite:///{path}")


def _rows(db: Database, model: type[SQLModel]) -> list[tuple[Any, ...]]:
    table = _table(model)
    with db.session() as session:
        return [tuple(row) for row in session.execute(select(table).order_by(table.c.id))]


def _count(session: Session, model: type[SQLModel]) -> int:
    return session.scalar(select(func.count()).select_from(_table(model))) or 0


@pytest.fixture(scope="module")
def town(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, DemoSummary]]:
    """The default 1,500-resident town, generated once for the read-only checks."""
    db = _copy_db(sqlite_template, tmp_path_factory.mktemp("demo") / "town.db")
    summary = generate_demo(db, seed=SEED, today=TODAY)
    yield db, summary
    db.dispose()


@pytest.fixture(scope="module")
def residents(town: tuple[Database, DemoSummary]) -> list[Resident]:
    db, _ = town
    with db.session() as session:
        return list(session.scalars(select(Resident).order_by(_table(Resident).c.id)))


# Determinism -----------------------------------------------------------------------------------


def test_same_seed_and_day_give_identical_rows(sqlite_template: Path, tmp_path: Path) -> None:
    first = _copy_db(sqlite_template, tmp_path / "first.db")
    second = _copy_db(sqlite_template, tmp_path / "second.db")
    other = _copy_db(sqlite_template, tmp_path / "other.db")
    try:
        generate_demo(first, residents=400, seed=7, today=TODAY)
        generate_demo(second, residents=400, seed=7, today=TODAY)
        generate_demo(other, residents=400, seed=8, today=TODAY)
        for model in (Household, Resident, SealRegistration, TaxRecord):
            assert _rows(first, model) == _rows(second, model), model.__name__
        assert _rows(first, Resident) != _rows(other, Resident)
    finally:
        for db in (first, second, other):
            db.dispose()


# The default town ------------------------------------------------------------------------------


def test_counts_match_the_summary(town: tuple[Database, DemoSummary]) -> None:
    db, summary = town
    with db.session() as session:
        assert _count(session, Resident) == summary.residents == 1500
        assert _count(session, Household) == summary.households
        assert _count(session, SealRegistration) == summary.seals
        assert _count(session, TaxRecord) == summary.tax_records
    # About 630 households for 1,500 residents (2.4 persons a household).
    assert 580 <= summary.households <= 690
    assert summary.municipality == "青葉台町"


def test_numbers_have_valid_check_digits(
    residents: list[Resident], town: tuple[Database, DemoSummary]
) -> None:
    db, _ = town
    assert all(atena.is_valid(r.atena_number) and len(r.atena_number) == 10 for r in residents)
    assert len({r.atena_number for r in residents}) == len(residents)
    codes = [r.resident_code for r in residents]
    assert all(len(c) == 11 and c.isdigit() and atena.check_digit(c[:-1]) == int(c[-1]) for c in codes)
    assert len(set(codes)) == len(codes)
    with db.session() as session:
        numbers = list(session.scalars(select(_table(Household).c.household_number)))
    assert all(atena.is_valid(n) for n in numbers)


def test_relationships_and_heads(residents: list[Resident], town: tuple[Database, DemoSummary]) -> None:
    db, _ = town
    assert {r.relationship for r in residents} <= set(RELATIONSHIPS)
    # The standard spells grandchildren and grandparents as chains (子の子, 父の父), never 孫/祖父/祖母.
    assert not {r.relationship for r in residents} & {"孫", "祖父", "祖母"}
    by_household: dict[int, list[Resident]] = defaultdict(list)
    for resident in residents:
        by_household[resident.household_id].append(resident)
    with db.session() as session:
        households = {h.id: h for h in session.scalars(select(Household))}
    assert set(by_household) == set(households)
    for household_id, members in by_household.items():
        heads = [m for m in members if m.relationship == "世帯主"]
        assert len(heads) == 1, household_id
        head = heads[0]
        assert households[household_id].head_name == head.full_name
        assert members[0] is head  # 世帯員の並び順: the head first
        for member in members:
            assert member.address == households[household_id].address
            if head.birth_date is None or member.birth_date is None:
                continue
            gap = age_on(member.birth_date, TODAY) - age_on(head.birth_date, TODAY)
            if member.relationship == "子":
                assert gap <= -15, (member.full_name, gap)
            if member.relationship in ("父", "母", "妻の母"):
                assert gap >= 15, (member.full_name, gap)


def test_aging_rate(residents: list[Resident]) -> None:
    ages = [age_on(r.birth_date, TODAY) for r in residents if r.birth_date is not None]
    assert 0.30 <= sum(a >= 65 for a in ages) / len(ages) <= 0.42
    assert min(ages) >= 0 and max(ages) <= 105


def test_names_and_kana(residents: list[Resident]) -> None:
    katakana = re.compile(r"^[\u30a0-\u30ff\u3000]+$")
    for resident in residents:
        assert katakana.match(resident.family_name_kana), resident.family_name_kana
        assert katakana.match(resident.given_name_kana), resident.given_name_kana
        assert resident.search_key == search_key(
            resident.family_name,
            resident.given_name,
            resident.family_name_kana,
            resident.given_name_kana,
            resident.alias,
        )
    assert any(r.former_surname for r in residents)


def test_rare_characters_survive_storage(town: tuple[Database, DemoSummary]) -> None:
    db, _ = town
    with db.session() as session:
        for name in ("髙橋", "山\ufa11", "\U00020bb7田"):
            stored = list(
                session.scalars(text("SELECT family_name FROM resident WHERE family_name = :n"), {"n": name})
            )
            assert stored, name
            assert all(s.encode("utf-8") == name.encode("utf-8") for s in stored)
        # Not folded on the way in: the plain 崎 spelling is a different family.
        folded = session.scalars(
            select(_table(Resident).c.atena_number).where(_table(Resident).c.family_name == "山\ufa11")
        ).all()
        plain = session.scalars(
            select(_table(Resident).c.atena_number).where(_table(Resident).c.family_name == "山崎")
        ).all()
        assert not set(folded) & set(plain)
        # ... but search finds both spellings.
        key = search_key("山崎")
        found = session.scalars(
            select(_table(Resident).c.family_name).where(_table(Resident).c.search_key.contains(key))
        ).all()
        assert "山\ufa11" in found


def test_foreign_residents(residents: list[Resident]) -> None:
    foreign = [r for r in residents if r.nationality]
    assert 0.01 <= len(foreign) / len(residents) <= 0.05
    assert len({r.nationality for r in foreign}) >= 3
    for resident in foreign:
        assert resident.family_name.isascii() and resident.family_name == resident.family_name.upper()
        assert resident.honseki == "" and resident.hittousha == ""
        assert resident.birth_date is not None
        assert resident.birth_date_text == format_seireki(resident.birth_date)
        assert resident.extra.get("residence_status")
    assert any(r.alias for r in foreign)


def test_japanese_dates_and_registers(residents: list[Resident]) -> None:
    japanese = [r for r in residents if not r.nationality]
    for resident in japanese:
        assert resident.honseki and resident.hittousha, resident.full_name
        partial = any(mark in resident.birth_date_text for mark in ("推定", "頃", "旬", "不詳"))
        if resident.birth_date is not None and not partial:
            assert resident.birth_date_text == format_wareki(resident.birth_date)
        if resident.became_resident_on is not None and resident.birth_date is not None:
            assert resident.became_resident_on >= resident.birth_date
        if resident.address_set_on is not None and resident.became_resident_on is not None:
            assert resident.address_set_on >= resident.became_resident_on
    assert any(r.previous_address for r in japanese)
    assert any(r.address_katagaki for r in japanese)
    assert all(r.postal_code.startswith("999-99") for r in residents)


def test_partial_birth_dates(residents: list[Resident]) -> None:
    unknown = [r for r in residents if r.birth_date is None]
    assert unknown and all(r.birth_date_text for r in unknown)
    approximate = [
        r
        for r in residents
        if r.birth_date is not None and ("頃" in r.birth_date_text or "旬" in r.birth_date_text)
    ]
    assert approximate


def test_statuses_and_suppressions(residents: list[Resident]) -> None:
    statuses = Counter(r.status for r in residents)
    for status in (ResidentStatus.MOVING_OUT, ResidentStatus.MOVED_OUT, ResidentStatus.DECEASED):
        assert statuses[status] >= 1, status
    for resident in residents:
        if resident.status is ResidentStatus.MOVING_OUT:
            assert resident.status_changed_on is not None
            assert TODAY < resident.status_changed_on <= TODAY + timedelta(days=14)
        elif resident.status in (ResidentStatus.MOVED_OUT, ResidentStatus.DECEASED):
            assert resident.status_changed_on is not None and resident.status_changed_on < TODAY
        else:
            assert resident.status_changed_on is None
    flags = Counter(flag for r in residents for flag in r.suppressions)
    assert flags[Suppression.SUPPORT_MEASURE.value] >= 1
    assert flags[Suppression.GAIJI_PENDING.value] >= 1
    moved_in_today = [r for r in residents if r.became_resident_on == TODAY]
    assert moved_in_today and all(r.previous_address for r in moved_in_today)


def test_card_serials(residents: list[Resident]) -> None:
    serials = [r.auth_cert_serial for r in residents if r.auth_cert_serial]
    assert all(re.fullmatch(r"[0-9A-F]{16}", s) for s in serials)
    assert len(set(serials)) == len(serials)
    adults = [r for r in residents if r.birth_date is None or age_on(r.birth_date, TODAY) >= 15]
    children = [r for r in residents if r.birth_date is not None and age_on(r.birth_date, TODAY) < 15]
    assert not any(r.auth_cert_serial or r.sign_cert_serial for r in children)
    share = sum(bool(r.auth_cert_serial) for r in adults) / len(adults)
    assert 0.6 <= share <= 0.85
    assert all(bool(r.auth_cert_serial) == bool(r.sign_cert_serial) for r in residents)


def test_seals(residents: list[Resident], town: tuple[Database, DemoSummary]) -> None:
    db, _ = town
    by_id = {r.id: r for r in residents}
    with db.session() as session:
        seals = list(session.scalars(select(SealRegistration)))
    assert len({s.registration_number for s in seals}) == len(seals)
    assert len({s.resident_id for s in seals}) == len(seals)  # one seal a person
    for seal in seals:
        resident = by_id[seal.resident_id]
        if resident.birth_date is not None:
            assert age_on(resident.birth_date, TODAY) >= 15
            assert age_on(resident.birth_date, seal.registered_on) >= 15
        assert seal.registered_on <= TODAY
        assert seal.active == (resident.status in (ResidentStatus.RESIDENT, ResidentStatus.MOVING_OUT))
    adults = [r for r in residents if r.birth_date is None or age_on(r.birth_date, TODAY) >= 15]
    assert 0.55 <= len(seals) / len(adults) <= 0.8


def test_tax_records(residents: list[Resident], town: tuple[Database, DemoSummary]) -> None:
    db, _ = town
    by_id = {r.id: r for r in residents}
    fiscal_year = fiscal_year_of(TODAY)
    with db.session() as session:
        records = list(session.scalars(select(TaxRecord)))
    assert {t.fiscal_year for t in records} == {fiscal_year, fiscal_year - 1}
    taxable = [t for t in records if t.is_taxable]
    exempt = [t for t in records if not t.is_taxable]
    assert taxable and exempt
    for record in records:
        resident = by_id[record.resident_id]
        if resident.birth_date is not None:
            assert age_on(resident.birth_date, TODAY) >= 16
        assert record.taxable_income <= record.total_income
        if record.is_taxable:
            # 所得割 about 6% / 4% of taxable income plus 均等割 3,000 / 1,000 yen.
            assert abs(record.municipal_tax - 3_000 - record.taxable_income * 0.06) < 100
            assert abs(record.prefectural_tax - 1_000 - record.taxable_income * 0.04) < 100
    moved_in_today = {r.id for r in residents if r.became_resident_on == TODAY}
    assert not any(t.resident_id in moved_in_today for t in records)


def test_organisation(town: tuple[Database, DemoSummary]) -> None:
    db, summary = town
    with db.session() as session:
        municipality = session.scalars(select(Municipality)).one()
        sites = list(session.scalars(select(Site)))
        locations = list(session.scalars(select(Location).order_by(_table(Location).c.code)))
        devices = list(session.scalars(select(Device)))
    assert municipality.code == DEMO_MUNICIPALITY_CODE
    assert municipality.code.startswith("99")
    assert int(municipality.code[-1]) == municipality_check_digit(municipality.code[:5])
    assert municipality.mayor_title == "町長" and municipality.name_kana == "あおばだいまち"
    assert sorted(s.kind for s in sites) == sorted([SiteKind.MAIN_OFFICE, SiteKind.BRANCH, SiteKind.BRANCH])
    assert [loc.code for loc in locations] == ["01", "02", "03", "04"]
    assert all(loc.settings["hours"]["mon"] == ["08:30", "17:15"] for loc in locations)
    assert locations[0].settings["hours"]["thu"] == ["08:30", "19:30"]
    assert Counter(d.kind for d in devices) == {DeviceKind.KIOSK: 4, DeviceKind.BACK_OFFICE: 4}
    assert all(d.token_hash == "" for d in devices)
    assert (summary.sites, summary.locations, summary.devices) == (3, 4, 8)


def test_municipality_check_digit() -> None:
    assert municipality_check_digit("13101") == 6  # 千代田区 131016
    assert municipality_check_digit("01100") == 2  # 札幌市 011002
    assert municipality_check_digit("27100") == 4  # 大阪市 271004
    assert municipality_check_digit("00000") == 1  # remainder 0: 11 → last digit 1
    assert municipality_check_digit("20000") == 0  # remainder 1: 10 → last digit 0


def test_staff_accounts(town: tuple[Database, DemoSummary]) -> None:
    db, summary = town
    assert summary.staff_users == len(DEMO_ACCOUNTS)
    assert {(login, role) for login, _, role in summary.credentials} == {
        (a.login_id, a.role) for a in DEMO_ACCOUNTS
    }
    assert {role for _, _, role in summary.credentials} == {"clerk", "manager", "auditor", "admin"}
    with db.session() as session:
        for login_id, password, role in summary.credentials:
            assert len(password) >= 10
            user = session.scalars(select(StaffUser).where(_table(StaffUser).c.login_id == login_id)).one()
            assert user.id is not None
            assert group_names_of(session, user.id) == [role]
        assert verify(session).ok  # account creation and the generation run are audited


# Existing data and reset -----------------------------------------------------------------------


def test_refuses_existing_data_and_resets(sqlite_db: Database) -> None:
    first = generate_demo(sqlite_db, residents=200, seed=1, today=TODAY)
    with pytest.raises(DemoDataExists, match="--reset"):
        generate_demo(sqlite_db, residents=200, seed=2, today=TODAY)

    # A demo account whose password was changed is kept, and its password is not printed.
    with sqlite_db.write_session() as session:
        session.execute(
            _table(StaffUser).update().where(_table(StaffUser).c.login_id == "auditor"),
            {"password_hash": hash_password("a-real-secret-password")},
        )
        session.commit()

    second = generate_demo(sqlite_db, residents=250, seed=2, today=TODAY, reset=True)
    assert second.residents == 250
    assert "auditor" not in {login for login, _, _ in second.credentials}
    assert len(second.credentials) == len(first.credentials) - 1
    with sqlite_db.session() as session:
        assert _count(session, Resident) == 250
        assert _count(session, Household) == second.households
        assert _count(session, SealRegistration) == second.seals
        assert _count(session, TaxRecord) == second.tax_records
        assert _count(session, StaffUser) == len(DEMO_ACCOUNTS)
        assert _count(session, Municipality) == 1
        assert _count(session, Location) == 4
        assert _count(session, Device) == 8
        # Ids start afresh after the reset, so a reset town matches a town made in an empty database.
        assert session.scalar(select(func.min(_table(Resident).c.id))) == 1


# PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres(postgres_template: str) -> None:
    name, url = fresh_postgres(postgres_template)
    db = Database(url)
    try:
        summary = generate_demo(db, residents=300, seed=SEED, today=TODAY)
        with db.write_session() as session:
            assert _count(session, Resident) == 300
            rare = session.scalars(
                select(_table(Resident).c.family_name).where(_table(Resident).c.family_name == "\U00020bb7田")
            ).all()
            assert rare and rare[0] == "\U00020bb7田"
            # Sequences were moved past the explicit ids: a plain insert gets a new id.
            household = Household(household_number="X-1", address="架空県青葉台町中央一丁目1番1号")
            session.add(household)
            session.flush()
            assert household.id is not None and household.id > summary.households
            session.rollback()
        again = generate_demo(db, residents=300, seed=SEED, today=TODAY, reset=True)
        assert again.households == summary.households
    finally:
        db.dispose()
        drop_postgres(name)
