"""Fill a database with a fictional town — 架空県 青葉台町 — for demonstrations and load tests.

`generate_demo` is deterministic: the same seed and `today` give byte-identical registry rows
(households, residents, seals, tax records). Rows are inserted with SQLAlchemy Core in batches
and explicit primary keys, in one transaction, so 100,000 residents take seconds and a failure
leaves nothing half-written. Staff accounts are created only where missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, insert, inspect, select, text
from sqlmodel import Session, SQLModel

from app.db import Database
from app.demo._town import PREFECTURE, TOWN, TOWN_PREFIX, Town, plan_town, resident_search_key
from app.domain.registry import DeviceKind, SiteKind
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
from app.services import audit
from app.services.audit import Actor
from app.services.lifeevent_rules import seed_if_empty
from app.services.passwords import verify_password
from app.services.staff import create_user, ensure_default_groups

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_MUNICIPALITY_CODE",
    "DemoDataError",
    "DemoDataExists",
    "DemoSummary",
    "generate_demo",
    "municipality_check_digit",
]

JST = timezone(timedelta(hours=9))
BATCH_SIZE = 5_000


def municipality_check_digit(code5: str) -> int:
    """検査数字 of a 全国地方公共団体コード (JIS X 0402).

    Weights 6,5,4,3,2 on the five digits; the check digit is the last digit of 11 - (sum mod 11),
    so a remainder of 0 gives 1 and a remainder of 1 gives 0 (e.g. 13101 → 131016).
    """
    if len(code5) != 5 or not code5.isascii() or not code5.isdigit():
        raise ValueError(f"need five ASCII digits: {code5!r}")
    total = sum(int(digit) * weight for digit, weight in zip(code5, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


# 99 is no prefecture (JIS X 0401 ends at 47); 3xx is the range for 町村.
DEMO_MUNICIPALITY_CODE = "99341" + str(municipality_check_digit("99341"))


class DemoDataError(RuntimeError):
    """The demo town cannot be created in this database; the message says why (ja / en)."""


class DemoDataExists(DemoDataError):
    """The database already holds registry data and `reset` was not asked for."""

    def __init__(self, residents: int, households: int) -> None:
        super().__init__(
            f"データベースには既に住民記録があります（住民 {residents} 人、世帯 {households} 件）。"
            "作り直すには --reset を付けて実行してください（既存の住民記録は削除されます）。 / "
            f"The database already holds registry data ({residents} residents, {households} households). "
            "Run again with --reset to replace it (existing registry rows are deleted)."
        )
        self.residents = residents
        self.households = households


@dataclass(frozen=True)
class DemoSummary:
    households: int
    residents: int
    seals: int
    tax_records: int
    staff_users: int
    # (login_id, password, role) of demo accounts that still have their demo password.
    credentials: list[tuple[str, str, str]] = field(default_factory=list)
    municipality: str = ""
    sites: int = 0
    locations: int = 0
    devices: int = 0


@dataclass(frozen=True)
class _Account:
    login_id: str
    display_name: str
    role: str  # one of DEFAULT_GROUPS
    department: str  # a department id of the life-event rules (app/domain/lifeevents/data)

    @property
    def password(self) -> str:
        return f"demo-{self.login_id}-pass"


DEMO_ACCOUNTS: tuple[_Account, ...] = (
    _Account("admin", "システム管理者（デモ）", "admin", ""),
    _Account("clerk", "窓口 一郎（デモ）", "clerk", "shimin"),
    _Account("clerk2", "窓口 花子（デモ）", "clerk", "hoken_nenkin"),
    _Account("clerk3", "北浦 支所員（デモ）", "clerk", "shimin"),
    _Account("manager", "住民課長（デモ）", "manager", "shimin"),
    _Account("auditor", "監査 担当（デモ）", "auditor", ""),
)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _hours(late_thursday: bool) -> dict[str, list[str]]:
    # Days not listed are closed.
    hours = {day: ["08:30", "17:15"] for day in _WEEKDAYS}
    if late_thursday:
        hours["thu"] = ["08:30", "19:30"]  # 窓口延長 one evening a week
    return hours


def generate_demo(
    db: Database,
    *,
    residents: int = 1500,
    seed: int = 20261121,
    today: date | None = None,
    reset: bool = False,
) -> DemoSummary:
    """Create the demo town in `db`; see the module docstring.

    Raises DemoDataExists if residents or households exist and `reset` is False. With `reset`,
    registry rows and the demo town's own sites, locations and devices are deleted first (with
    any rows in other tables that point at them), in the same transaction.
    """
    if residents < 1:
        raise ValueError("residents must be at least 1")
    if today is None:
        today = datetime.now(JST).date()
    town = plan_town(residents, seed, today)
    # Rows carry a fixed timestamp (midnight JST of `today`) so that runs are reproducible.
    stamp = datetime.combine(today, time(0), tzinfo=JST).astimezone(UTC)

    with db.write_session() as session:
        resident_count = session.scalar(select(func.count()).select_from(_table(Resident))) or 0
        household_count = session.scalar(select(func.count()).select_from(_table(Household))) or 0
        if (resident_count or household_count) and not reset:
            raise DemoDataExists(resident_count, household_count)
        if reset:
            _clear(session)
        municipality, sites, locations, devices = _ensure_town(session)
        staff_users, credentials = _ensure_staff(session)
        seed_if_empty(session)  # the life-event rules staff can edit (管理 → 手続きルール)
        _insert_registry(session, town, stamp)
        audit.record(
            session,
            Actor.system("demo-data"),
            "demo.generate",
            target_type="municipality",
            target_id=DEMO_MUNICIPALITY_CODE,
            detail={"residents": residents, "seed": seed, "today": today.isoformat(), "reset": reset},
        )
        if session.get_bind().dialect.name == "postgresql":
            _bump_sequences(session)
        session.commit()

    return DemoSummary(
        households=len(town.households),
        residents=len(town.residents),
        seals=len(town.seals),
        tax_records=len(town.taxes),
        staff_users=staff_users,
        credentials=credentials,
        municipality=municipality,
        sites=sites,
        locations=locations,
        devices=devices,
    )


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


# Reset ---------------------------------------------------------------------------------------


def _clear(session: Session) -> None:
    """Delete the registry and the demo town's organisation rows, dependants first."""
    existing = set(inspect(session.connection()).get_table_names())
    for model in (TaxRecord, SealRegistration, Resident, Household):
        _delete_where(session, _table(model), None, existing)
    municipality = _table(Municipality)
    site = _table(Site)
    location = _table(Location)
    demo_municipality = select(municipality.c.id).where(municipality.c.code == DEMO_MUNICIPALITY_CODE)
    demo_sites = select(site.c.id).where(site.c.municipality_id.in_(demo_municipality))
    demo_locations = select(location.c.id).where(location.c.site_id.in_(demo_sites))
    _delete_where(session, _table(Device), _table(Device).c.location_id.in_(demo_locations), existing)
    _delete_where(session, location, location.c.site_id.in_(demo_sites), existing)
    _delete_where(session, site, site.c.municipality_id.in_(demo_municipality), existing)
    _delete_where(session, municipality, municipality.c.code == DEMO_MUNICIPALITY_CODE, existing)


def _delete_where(
    session: Session,
    table: Table,
    where: ColumnElement[bool] | None,
    existing: set[str],
    _path: tuple[str, ...] = (),
) -> None:
    """DELETE rows of `table`, after rows elsewhere that reference them (tables added later by
    other features, e.g. issue history pointing at a resident or a device)."""
    if table.name not in existing or table.name in _path:
        return
    for other in SQLModel.metadata.sorted_tables:
        for foreign_key in other.foreign_keys:
            if foreign_key.column.table is not table:
                continue
            referenced = select(foreign_key.column)
            if where is not None:
                referenced = referenced.where(where)
            _delete_where(session, other, foreign_key.parent.in_(referenced), existing, (*_path, table.name))
    statement = delete(table) if where is None else delete(table).where(where)
    session.connection().execute(statement)


# Organisation and staff ----------------------------------------------------------------------


def _ensure_town(session: Session) -> tuple[str, int, int, int]:
    """The municipality, its 本庁 and two 支所, four locations and their devices (kept if present)."""
    municipality_table = _table(Municipality)
    site_table = _table(Site)
    location_table = _table(Location)
    device_table = _table(Device)
    existing = session.execute(
        select(municipality_table.c.id, municipality_table.c.name).where(
            municipality_table.c.code == DEMO_MUNICIPALITY_CODE
        )
    ).first()
    if existing is not None:
        site_ids = select(site_table.c.id).where(site_table.c.municipality_id == existing.id)
        location_ids = select(location_table.c.id).where(location_table.c.site_id.in_(site_ids))
        sites = session.scalar(select(func.count()).where(site_table.c.id.in_(site_ids))) or 0
        locations = session.scalar(select(func.count()).where(location_table.c.id.in_(location_ids))) or 0
        devices = (
            session.scalar(select(func.count()).where(device_table.c.location_id.in_(location_ids))) or 0
        )
        return str(existing.name), sites, locations, devices

    wanted_codes = ["01", "02", "03", "04"]
    taken = list(
        session.scalars(select(location_table.c.code).where(location_table.c.code.in_(wanted_codes)))
    )
    if taken:
        raise DemoDataError(
            f"拠点コード {', '.join(taken)} は他の自治体で使われています。 / Location codes {', '.join(taken)} "
            "are already used by another municipality; the demo town needs 01–04."
        )

    municipality = Municipality(
        code=DEMO_MUNICIPALITY_CODE,
        name=TOWN,
        name_kana="あおばだいまち",
        prefecture=PREFECTURE,
        mayor_title="町長",
        mayor_name="緑川　晴彦",
        postal_code="999-9901",
        address=f"{TOWN_PREFIX}中央一丁目1番1号",
        phone="000-000-0000",
    )
    session.add(municipality)
    session.flush()
    assert municipality.id is not None

    main_settings = {
        "auto_print": True,
        "hours": _hours(late_thursday=True),
        "kiosk_certificates": ["juminhyo", "inkan", "tax"],
    }
    branch_settings = {
        "auto_print": True,
        "hours": _hours(late_thursday=False),
        "kiosk_certificates": ["juminhyo", "inkan"],
    }
    plan: list[tuple[str, SiteKind, str, list[tuple[str, str, dict[str, Any]]]]] = [
        (
            "本庁",
            SiteKind.MAIN_OFFICE,
            f"{TOWN_PREFIX}中央一丁目1番1号",
            [("01", "本庁 住民課窓口", main_settings), ("02", "本庁 キオスクコーナー", main_settings)],
        ),
        (
            "北浦支所",
            SiteKind.BRANCH,
            f"{TOWN_PREFIX}大字北浦1020番地",
            [("03", "北浦支所 窓口", branch_settings)],
        ),
        (
            "南沢支所",
            SiteKind.BRANCH,
            f"{TOWN_PREFIX}大字南沢455番地",
            [("04", "南沢支所 窓口", branch_settings)],
        ),
    ]
    locations = devices = 0
    for site_name, kind, address, site_locations in plan:
        site = Site(municipality_id=municipality.id, name=site_name, kind=kind, address=address)
        session.add(site)
        session.flush()
        assert site.id is not None
        for code, name, settings in site_locations:
            location = Location(site_id=site.id, code=code, name=name, settings=dict(settings))
            session.add(location)
            session.flush()
            assert location.id is not None
            locations += 1
            # Tokens are left empty: devices are enrolled through the device bridge.
            for number, (device_kind, label) in enumerate(
                ((DeviceKind.KIOSK, "キオスク"), (DeviceKind.BACK_OFFICE, "事務端末")), start=1
            ):
                session.add(
                    Device(
                        location_id=location.id,
                        code=f"{code}{number:02d}",
                        name=f"{name} {label}1",
                        kind=device_kind,
                    )
                )
                devices += 1
    session.flush()
    return municipality.name, len(plan), locations, devices


def _ensure_staff(session: Session) -> tuple[int, list[tuple[str, str, str]]]:
    """Demo accounts, one or more per built-in group; existing accounts are left as they are."""
    ensure_default_groups(session)
    credentials: list[tuple[str, str, str]] = []
    for account in DEMO_ACCOUNTS:
        users = _table(StaffUser)
        password_hash = session.scalar(
            select(users.c.password_hash).where(users.c.login_id == account.login_id)
        )
        if password_hash is None:
            create_user(
                session,
                login_id=account.login_id,
                display_name=account.display_name,
                password=account.password,
                groups=[account.role],
                department=account.department,
            )
        elif not verify_password(password_hash, account.password):
            continue  # someone set a real password: do not print a wrong one
        credentials.append((account.login_id, account.password, account.role))
    return len(DEMO_ACCOUNTS), credentials


# Registry rows -------------------------------------------------------------------------------


def _next_id(session: Session, table: Table) -> int:
    return (session.scalar(select(func.max(table.c.id))) or 0) + 1


def _insert_registry(session: Session, town: Town, stamp: datetime) -> None:
    household_table = _table(Household)
    resident_table = _table(Resident)
    seal_table = _table(SealRegistration)
    tax_table = _table(TaxRecord)
    first_household = _next_id(session, household_table)
    first_resident = _next_id(session, resident_table)
    first_seal = _next_id(session, seal_table)
    first_tax = _next_id(session, tax_table)

    _insert(
        session,
        household_table,
        (
            {
                "id": first_household + index,
                "household_number": household.household_number,
                "head_name": household.members[0].full_name,
                "postal_code": household.postal_code,
                "address": household.address,
                "address_katagaki": household.katagaki,
                "updated_at": stamp,
            }
            for index, household in enumerate(town.households)
        ),
    )
    _insert(
        session,
        resident_table,
        (
            {
                "id": first_resident + index,
                "atena_number": person.atena_number,
                "resident_code": person.resident_code,
                "household_id": first_household + town.household_of[index],
                "relationship": person.relationship,
                "family_name": person.family_name,
                "given_name": person.given_name,
                "family_name_kana": person.family_kana,
                "given_name_kana": person.given_kana,
                "former_surname": person.former_surname,
                "alias": person.alias,
                "search_key": resident_search_key(person),
                "birth_date": person.birth,
                "birth_date_text": person.birth_text,
                "sex": person.sex,
                "nationality": person.nationality,
                "postal_code": town.households[town.household_of[index]].postal_code,
                "address": town.households[town.household_of[index]].address,
                "address_katagaki": town.households[town.household_of[index]].katagaki,
                "honseki": person.honseki,
                "hittousha": person.hittousha,
                "became_resident_on": person.became_on,
                "became_resident_text": person.became_text,
                "address_set_on": person.address_set_on,
                "address_set_text": person.address_set_text,
                "previous_address": person.previous_address,
                "status": person.status,
                "status_changed_on": person.status_changed_on,
                "suppressions": person.suppressions,
                "auth_cert_serial": person.auth_cert_serial,
                "sign_cert_serial": person.sign_cert_serial,
                "updated_at": stamp,
                "extra": person.extra,
            }
            for index, person in enumerate(town.residents)
        ),
    )
    _insert(
        session,
        seal_table,
        (
            {
                "id": first_seal + index,
                "resident_id": first_resident + seal.resident_index,
                "registration_number": seal.registration_number,
                "registered_on": seal.registered_on,
                "seal_image_key": "",
                "active": seal.active,
            }
            for index, seal in enumerate(town.seals)
        ),
    )
    _insert(
        session,
        tax_table,
        (
            {
                "id": first_tax + index,
                "resident_id": first_resident + tax.resident_index,
                "fiscal_year": tax.fiscal_year,
                "total_income": tax.total_income,
                "taxable_income": tax.taxable_income,
                "municipal_tax": tax.municipal_tax,
                "prefectural_tax": tax.prefectural_tax,
                "dependants": tax.dependants,
            }
            for index, tax in enumerate(town.taxes)
        ),
    )


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(session: Session, table: Table, rows: Iterator[dict[str, Any]]) -> None:
    statement = insert(table)
    connection = session.connection()
    for batch in _batches(rows, BATCH_SIZE):
        connection.execute(statement, batch)


def _bump_sequences(
    session: Session, tables: Sequence[str] = ("household", "resident", "seal_registration", "tax_record")
) -> None:
    """Explicit ids do not advance PostgreSQL's sequences; move them past the inserted rows."""
    for name in tables:
        session.connection().execute(
            text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
        )
