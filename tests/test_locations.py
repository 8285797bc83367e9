"""Location settings: validation, the audit entry, the staff form, the kiosk's closed page."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from app.db import Database
from app.domain.hours import JST
from app.domain.registry import DeviceKind
from app.models import AuditEntry, Device, EventRecord, Location, Municipality, Site
from app.services.audit import Actor
from app.services.certificates import location_settings, office_device_for
from app.services.locations import (
    SettingsError,
    closed_context,
    kiosk_open,
    settings_of,
    settings_version,
    update_settings,
)
from tests.conftest import StaffAccounts, csrf_of, sign_in

CLERK = Actor(type="staff", id="1", name="テスト clerk")
WEEKDAY_HOURS = {day: ["08:30", "17:15"] for day in ("mon", "tue", "wed", "fri")} | {
    "thu": ["08:30", "19:30"]
}


@dataclass(frozen=True)
class Place:
    location_id: int
    other_location_id: int


@pytest.fixture
def place(db: Database) -> Place:
    """本庁 住民課窓口 (kiosk K101, back office B101) and 支所 (back office B201, revoked B202)."""
    with db.write_session() as session:
        municipality = Municipality(code="999991", name="テスト町")
        session.add(municipality)
        session.flush()
        assert municipality.id is not None
        site = Site(municipality_id=municipality.id, name="本庁")
        session.add(site)
        session.flush()
        assert site.id is not None
        main = Location(site_id=site.id, code="01", name="本庁 住民課窓口", settings={"hours": WEEKDAY_HOURS})
        branch = Location(site_id=site.id, code="03", name="北浦支所 窓口")
        session.add(main)
        session.add(branch)
        session.flush()
        assert main.id is not None and branch.id is not None
        for location_id, code, kind, revoked in [
            (main.id, "K101", DeviceKind.KIOSK, False),
            (main.id, "B101", DeviceKind.BACK_OFFICE, False),
            (branch.id, "B201", DeviceKind.BACK_OFFICE, False),
            (branch.id, "B202", DeviceKind.BACK_OFFICE, True),
        ]:
            session.add(
                Device(location_id=location_id, code=code, name=f"端末{code}", kind=kind, revoked=revoked)
            )
        session.commit()
        return Place(main.id, branch.id)


def _update(db: Database, location_id: int, changes: dict[str, Any], **kwargs: Any) -> Location:
    with db.write_session() as session:
        location = update_settings(session, CLERK, location_id, changes, **kwargs)
        session.commit()
        return location


def _errors(db: Database, location_id: int, changes: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(SettingsError) as raised:
        _update(db, location_id, changes)
    return raised.value.errors


def _location(db: Database, location_id: int) -> Location:
    with db.session() as session:
        location = session.get(Location, location_id)
        assert location is not None
        return location


def _entries(db: Database) -> list[AuditEntry]:
    with db.session() as session:
        return list(
            session.exec(
                select(AuditEntry)
                .where(AuditEntry.action == "location.settings")
                .order_by(col(AuditEntry.seq))
            ).all()
        )


# The service -------------------------------------------------------------------------------------


def test_saving_records_before_and_after_and_tells_staff_screens(db: Database, place: Place) -> None:
    _update(
        db,
        place.location_id,
        {
            "auto_print": False,
            "office_device": "B201",
            "fees": {"juminhyo": "２００円", "inkan": 300, "tax": "1,000"},
            "kiosk_certificates": ["tax", "juminhyo"],
            "receipt_footer": "  番号でお呼びします。 ",
        },
    )
    location = _location(db, place.location_id)
    settings = location_settings(location)
    assert settings["auto_print"] is False and settings["office_device"] == "B201"
    assert settings["fees"] == {"juminhyo": 200, "inkan": 300, "tax": 1000}
    assert settings["kiosk_certificates"] == ["juminhyo", "tax"]
    assert settings["receipt_footer"] == "番号でお呼びします。"
    assert settings["hours"] == WEEKDAY_HOURS  # untouched keys stay
    [entry] = _entries(db)
    assert entry.target_type == "location" and entry.target_id == str(place.location_id)
    assert entry.actor_name == CLERK.name
    assert entry.detail["before"] == {
        "auto_print": True,
        "office_device": "",
        "fees": {},
        "kiosk_certificates": ["juminhyo", "inkan", "tax"],
        "receipt_footer": "お呼びするまでお待ちください。",
    }
    assert entry.detail["after"]["office_device"] == "B201"
    assert entry.detail["after"]["fees"] == {"juminhyo": 200, "inkan": 300, "tax": 1000}
    with db.session() as session:
        event = session.exec(select(EventRecord).where(EventRecord.type == "location.settings")).one()
        assert event.topic == "staff" and event.data["location_id"] == place.location_id
        assert "office_device" in event.data["changed"]
        device = office_device_for(session, location)
        assert device is not None and device.code == "B201"


def test_a_save_that_changes_nothing_is_not_logged(db: Database, place: Place) -> None:
    _update(db, place.location_id, {"auto_print": True, "kiosk_certificates": ["juminhyo", "inkan", "tax"]})
    assert _entries(db) == []
    assert "auto_print" not in _location(db, place.location_id).settings  # the default still applies


def test_only_a_back_office_terminal_in_use_may_print(db: Database, place: Place) -> None:
    assert _errors(db, place.location_id, {"office_device": "K101"})["office_device"] == [
        "端末「K101 端末K101」は事務端末ではありません。証明書は事務端末のプリンターで印刷します。"
    ]
    assert _errors(db, place.location_id, {"office_device": "B202"})["office_device"] == [
        "端末「B202 端末B202」は停止されています。ほかの事務端末を選んでください。"
    ]
    assert _errors(db, place.location_id, {"office_device": "X9"})["office_device"] == [
        "端末「X9」は登録されていません。一覧から事務端末を選んでください。"
    ]
    _update(db, place.location_id, {"office_device": ""})  # "" = the location's own terminal
    assert _entries(db) == []


def test_fees_are_whole_yen_from_0_to_100000(db: Database, place: Place) -> None:
    errors = _errors(
        db,
        place.location_id,
        {"fees": {"juminhyo": "abc", "inkan": "100001", "tax": ""}},
    )
    assert errors == {
        "fees.juminhyo": [
            "住民票の写しの手数料「abc」は金額ではありません。円単位の整数で入力してください（例 300）。"
        ],
        "fees.inkan": ["印鑑登録証明書の手数料は0円から100,000円までにしてください。"],
        "fees.tax": ["課税・非課税証明書の手数料を入力してください（無料なら 0）。"],
    }
    assert "金額ではありません" in _errors(db, place.location_id, {"fees": {"tax": "-1"}})["fees.tax"][0]
    assert "金額ではありません" in _errors(db, place.location_id, {"fees": {"tax": "2.5"}})["fees.tax"][0]
    assert _errors(db, place.location_id, {"fees": {"passport": 100}})["fees"] == [
        "証明書の種類「passport」はありません。"
    ]
    _update(db, place.location_id, {"fees": {"juminhyo": 0, "inkan": "100000"}})
    assert settings_of(_location(db, place.location_id))["fees"] == {"juminhyo": 0, "inkan": 100000}


def test_receipt_text_is_one_line_of_at_most_200_characters(db: Database, place: Place) -> None:
    errors = _errors(db, place.location_id, {"receipt_footer": "あ" * 201})
    assert errors["receipt_footer"] == ["受付票の文言は200文字以内にしてください（いまは201文字）。"]
    errors = _errors(db, place.location_id, {"receipt_footer": "お待ちください\n窓口へ"})
    assert errors["receipt_footer"] == [
        "受付票の文言に改行やタブなどの制御文字は使えません。1行で入力してください。"
    ]
    assert "制御文字" in _errors(db, place.location_id, {"receipt_footer": "a\x07b"})["receipt_footer"][0]
    _update(db, place.location_id, {"receipt_footer": "あ" * 200})


def test_the_kiosk_may_offer_no_certificate_at_all(db: Database, place: Place) -> None:
    _update(db, place.location_id, {"kiosk_certificates": []})
    assert settings_of(_location(db, place.location_id))["kiosk_certificates"] == []
    assert _errors(db, place.location_id, {"kiosk_certificates": ["juminhyo", "passport"]}) == {
        "kiosk_certificates": ["証明書の種類「passport」はありません。"]
    }


def test_hours_and_exceptions_are_validated_and_stored_normalized(db: Database, place: Place) -> None:
    errors = _errors(
        db,
        place.location_id,
        {
            "hours": {"mon": ("8:30", "8:00"), "tue": ("25:00", "17:15")},
            "hours_exceptions": "12/29-1/3 年末年始\n12/32",
        },
    )
    assert errors == {
        "hours.mon": ["月曜日：閉庁時刻（08:00）は開庁時刻（08:30）より後にしてください。"],
        "hours.tue": ["火曜日の開庁時刻：「25:00」は 00:00～23:59 の範囲にありません。"],
        "hours_exceptions": ["2行目「12/32」：「12/32」という日付はありません。"],
    }
    _update(
        db,
        place.location_id,
        {
            "hours": {"mon": ("8:30", "17:15"), "thu": ("８：３０", "19:30"), "sat": None},
            "hours_exceptions": "12/29-1/3 年末年始",
            "enforce_hours": True,
        },
    )
    settings = settings_of(_location(db, place.location_id))
    assert settings["hours"] == {"mon": ["08:30", "17:15"], "thu": ["08:30", "19:30"]}
    assert settings["hours_exceptions"] == [
        {"from": "12-29", "to": "01-03", "hours": None, "note": "年末年始"}
    ]
    assert settings["enforce_hours"] is True


def test_enforcing_hours_needs_an_open_weekday(db: Database, place: Place) -> None:
    assert _errors(db, place.other_location_id, {"enforce_hours": True}) == {
        "enforce_hours": ["キオスクを時間外に休止するには、開庁時間を1日以上入力してください。"]
    }


def test_a_colleagues_save_in_between_is_not_overwritten(db: Database, place: Place) -> None:
    version = settings_version(_location(db, place.location_id))
    _update(db, place.location_id, {"receipt_footer": "先に保存"}, expected_version=version)
    with pytest.raises(SettingsError) as raised:
        _update(db, place.location_id, {"receipt_footer": "後から保存"}, expected_version=version)
    assert "ほかの職員がこの窓口の設定を変更しました" in raised.value.errors["_form"][0]
    assert settings_of(_location(db, place.location_id))["receipt_footer"] == "先に保存"


# Opening hours and the kiosk ---------------------------------------------------------------------


def test_kiosk_open_follows_the_hours_only_when_enforced(db: Database, place: Place) -> None:
    thursday_evening = datetime(2026, 5, 7, 19, 0, tzinfo=JST)
    thursday_night = datetime(2026, 5, 7, 19, 30, tzinfo=JST)
    location = _location(db, place.location_id)
    assert kiosk_open(location, thursday_night)  # hours set, but not enforced (the default)
    _update(db, place.location_id, {"enforce_hours": True})
    location = _location(db, place.location_id)
    assert kiosk_open(location, thursday_evening)
    assert not kiosk_open(location, thursday_night)
    context = closed_context(location, thursday_night)
    assert context is not None
    assert context["next_opening"] == datetime(2026, 5, 8, 8, 30, tzinfo=JST)
    assert closed_context(location, thursday_evening) is None
    # Unreadable stored hours keep the kiosk open rather than shut residents out.
    location.settings = {**location.settings, "hours": {"mon": "always"}}
    assert kiosk_open(location, thursday_night)


def _close_all_year(db: Database, location_id: int) -> None:
    """Closed whatever the time of day the test runs: a yearly exception over every day."""
    _update(db, location_id, {"hours_exceptions": "1/1-12/31 改修工事", "enforce_hours": True})


def test_kiosk_outside_the_hours_shows_the_closed_page(
    client: TestClient, db: Database, place: Place
) -> None:
    assert "ただいま受付時間外です" not in client.get("/kiosk/K101/").text  # not enforced yet
    _close_all_year(db, place.location_id)
    response = client.get("/kiosk/K101/")
    assert response.status_code == 200
    page = response.text
    assert "ただいま受付時間外です" in page and 'id="kiosk-closed"' in page
    assert "/kiosk/K101/begin" not in page  # no certificate buttons
    assert "08:30-19:30" in page  # the Thursday hours are shown
    assert 'id="next-opening"' not in page  # nothing opens within the year
    english = client.get("/kiosk/K101/?lang=en").text
    assert "This kiosk is closed now" in english


# The staff screens -------------------------------------------------------------------------------


def _form(client: TestClient, location_id: int) -> dict[str, Any]:
    """The form's fields as the browser would send them, from the rendered page."""
    return _form_from_page(client.get(f"/staff/locations/{location_id}").text)


def test_clerk_sees_the_list_and_the_form(
    client: TestClient, staff_accounts: StaffAccounts, place: Place
) -> None:
    sign_in(client, "clerk")
    listing = client.get("/staff/locations")
    assert listing.status_code == 200
    assert "本庁 住民課窓口" in listing.text and "北浦支所 窓口" in listing.text
    assert "08:30-19:30" in listing.text  # Thursday
    page = client.get(f"/staff/locations/{place.location_id}")
    assert page.status_code == 200
    for section in ("印刷", "受付票", "手数料", "開庁時間", "キオスクで交付する証明書"):
        assert section in page.text
    assert "B201 端末B201" in page.text and "B202" not in page.text and ">K101" not in page.text
    assert client.get("/staff/locations/9999").status_code == 404


def test_clerk_saves_the_form(
    client: TestClient, staff_accounts: StaffAccounts, db: Database, place: Place
) -> None:
    sign_in(client, "clerk")
    data = _form(client, place.location_id)
    data.pop("closed_sat")  # Saturday mornings open
    data.update(
        {
            "print_mode": "confirm",
            "office_device": "B201",
            "fee_juminhyo": "250",
            "kiosk": ["juminhyo"],
            "open_sat": "9:00",
            "close_sat": "12:00",
            "hours_exceptions": "12/29-1/3 年末年始",
            "enforce_hours": "on",
        }
    )
    response = client.post(f"/staff/locations/{place.location_id}", data=data)
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith(f"/staff/locations/{place.location_id}?saved=1")
    assert "保存しました" in client.get(response.headers["location"]).text
    settings = settings_of(_location(db, place.location_id))
    assert settings["auto_print"] is False and settings["office_device"] == "B201"
    assert settings["fees"] == {"juminhyo": 250, "inkan": 300, "tax": 300}
    assert settings["kiosk_certificates"] == ["juminhyo"]
    assert settings["hours"]["sat"] == ["09:00", "12:00"] and settings["hours"]["thu"] == ["08:30", "19:30"]
    assert "sun" not in settings["hours"]
    assert settings["enforce_hours"] is True
    [entry] = _entries(db)
    assert entry.actor_type == "staff" and "clerk" in entry.actor_name
    assert entry.detail["before"]["auto_print"] is True and entry.detail["after"]["auto_print"] is False
    # The same form again changes nothing and logs nothing.
    again = client.post(f"/staff/locations/{place.location_id}", data=_form(client, place.location_id))
    assert again.status_code == 303
    assert len(_entries(db)) == 1


def test_wrong_input_comes_back_with_messages_and_everything_typed(
    client: TestClient, staff_accounts: StaffAccounts, db: Database, place: Place
) -> None:
    sign_in(client, "clerk")
    data = _form(client, place.location_id)
    typed = {
        "fee_juminhyo": "三百",
        "fee_tax": "100001",
        "open_mon": "9:00",
        "close_mon": "8:00",
        "receipt_footer": "あ" * 201,
        "hours_exceptions": "12/29-1/3 年末年始\n2/30 <b>臨時</b>",
        "office_device": "K101",
        "print_mode": "confirm",
        "kiosk": ["inkan"],
    }
    data.update(typed)
    response = client.post(f"/staff/locations/{place.location_id}", data=data)
    assert response.status_code == 422
    page = response.text
    for message in (
        "住民票の写しの手数料「三百」は金額ではありません。",
        "課税・非課税証明書の手数料は0円から100,000円までにしてください。",
        "月曜日：閉庁時刻（08:00）は開庁時刻（09:00）より後にしてください。",
        "受付票の文言は200文字以内にしてください（いまは201文字）。",
        "2行目「2/30 &lt;b&gt;臨時&lt;/b&gt;」：「2/30」という日付はありません。",
        "端末「K101 端末K101」は事務端末ではありません。",
    ):
        assert message in page, message
    assert 'id="error-fees-juminhyo"' in page and 'aria-describedby="error-fees-juminhyo"' in page
    kept = _form_from_page(page)
    for name in ("fee_juminhyo", "fee_tax", "open_mon", "close_mon", "receipt_footer", "hours_exceptions"):
        assert kept[name] == typed[name], name
    assert (
        kept["office_device"] == "K101" and kept["print_mode"] == ["confirm"] and kept["kiosk"] == ["inkan"]
    )
    assert _entries(db) == []  # nothing saved
    assert "receipt_footer" not in _location(db, place.location_id).settings


def _form_from_page(page: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name:
            continue
        if 'type="checkbox"' in tag or 'type="radio"' in tag:
            if " checked" in tag:
                data.setdefault(name.group(1), []).append(value.group(1) if value else "on")
            continue
        data[name.group(1)] = html.unescape(value.group(1)) if value else ""
    chosen = re.search(r'<select id="office_device".*?<option value="([^"]*)" selected', page, re.S)
    data["office_device"] = chosen.group(1) if chosen else ""
    textarea = re.search(r'name="hours_exceptions"[^>]*>(.*?)</textarea>', page, re.S)
    data["hours_exceptions"] = html.unescape(textarea.group(1)) if textarea else None
    return data


def test_manager_may_not_change_location_settings(
    client: TestClient, staff_accounts: StaffAccounts, db: Database, place: Place
) -> None:
    sign_in(client, "manager")
    assert client.get("/staff/locations").status_code == 403
    assert client.get(f"/staff/locations/{place.location_id}").status_code == 403
    token = csrf_of(client, "/kiosk/")
    response = client.post(
        f"/staff/locations/{place.location_id}", data={"csrf_token": token, "print_mode": "confirm"}
    )
    assert response.status_code == 403
    assert _entries(db) == []


def test_admin_may_change_location_settings(
    client: TestClient, staff_accounts: StaffAccounts, place: Place
) -> None:
    sign_in(client, "admin")
    assert client.get("/staff/locations").status_code == 200


def test_a_post_without_csrf_is_refused(
    client: TestClient, staff_accounts: StaffAccounts, db: Database, place: Place
) -> None:
    sign_in(client, "clerk")
    data = _form(client, place.location_id)
    data.pop("csrf_token")
    data["print_mode"] = "confirm"
    assert client.post(f"/staff/locations/{place.location_id}", data=data).status_code == 403
    assert _entries(db) == []
