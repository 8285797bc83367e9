"""The procedure rules in a real browser: break the text, find the line, fix it, save, see it."""

from __future__ import annotations

import re

import pytest

from app.services.audit import verify
from app.services.lifeevent_rules import seed_documents, seed_if_empty
from tests.conftest import TEST_PASSWORD, LiveServer

pytestmark = pytest.mark.e2e

MOVING = "procedures_moving.yaml"


def test_admin_renames_a_procedure_and_sees_it_in_the_table(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    with live_server.db.write_session() as session:
        seed_if_empty(session)
        session.commit()
    page.goto(f"{live_server.url}/staff/login")
    page.fill("#login_id", "admin")
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/$"))
    page.goto(f"{live_server.url}/admin/")
    page.click("text=手続きルール >> nth=-1")
    page.wait_for_url(re.compile(r".*/admin/rules$"))
    page.click(f"a[href='/admin/rules/documents/{MOVING}']")

    original = seed_documents()[MOVING]
    assert page.input_value("#text") == original
    broken = original.replace("conditions: [is_foreign]", "conditions: [is_foreign and]", 1)
    page.fill("#text", broken)
    page.click("button[value=check]")
    problems = page.locator("#rule-problems")
    assert "手続き「tennyu_zairyu」の項目「conditions[0]」" in problems.inner_text()
    line = next(i for i, text in enumerate(broken.split("\n"), start=1) if "is_foreign and" in text)
    page.click(f"a[data-line='{line}']")  # selects the line in the text
    assert page.locator("#cursor-line").inner_text() == f"{line}行目"
    selected = page.evaluate(
        "() => { const t = document.getElementById('text'); return t.value.slice(t.selectionStart, t.selectionEnd); }"
    )
    assert "is_foreign and" in selected
    assert page.input_value("#text") == broken  # nothing typed is lost

    renamed = original.replace("{ja: 転入届（住民異動届）,", "{ja: 転入届（住民異動届・ブラウザ）,", 1)
    page.fill("#text", renamed)
    page.fill("#comment", "名称の確認")
    page.click("button[value=save]")
    page.wait_for_selector("#saved")
    assert "バージョン2" in page.locator("#saved").inner_text()

    page.goto(f"{live_server.url}/admin/rules")
    page.select_option("select[name=event]", "tennyu")
    page.click("#procedure-count ~ table >> xpath=preceding::button[1]")
    page.wait_for_url(re.compile(r".*event=tennyu.*"))
    assert "転入届（住民異動届・ブラウザ）" in page.locator("#procedure-tennyu_todoke").inner_text()
    with live_server.db.session() as session:
        assert verify(session).ok
