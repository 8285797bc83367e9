"""Every life event end to end in a real browser, at the kiosk (touch) and in interview mode.

The questions are answered the way a hurried resident would: the first choice, 「いいえ」, one,
yesterday — repeated until no question is left, because answers reveal follow-up questions.
Signatures are drawn on the pad with real pointer events. The case must arrive submitted, with
procedures, the signature as vectors and the answers as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from app.domain.cases import CaseStatus
from app.models import LifeCase, LifeCaseProcedure, Resident
from app.services.certificates import today_jst
from tests.conftest import TEST_PASSWORD
from tests.e2e.test_accessibility import KIOSK, Town, axe, card_holder, demo_town

pytestmark = pytest.mark.e2e

EVENTS = ("tennyu", "tenshutsu", "tenkyo", "setai_henko", "shussei", "shibou", "konin", "rikon")


@pytest.fixture(scope="module")
def town(
    sqlite_template: Path, password_hash: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Town]:
    yield from demo_town(sqlite_template, password_hash, tmp_path_factory)


def _event_date(event_id: str) -> date:
    today = today_jst()
    return today + timedelta(days=7) if event_id == "tenshutsu" else today - timedelta(days=1)


ANSWER_VISIBLE = """
(args) => {
  const [root, day] = args;
  let changed = 0;
  for (const box of document.querySelectorAll(root + " .question[data-kind]")) {
    const kind = box.dataset.kind;
    if (kind === "yes_no" || kind === "choice") {
      if (box.querySelector("input[type=radio]:checked")) continue;
      const radios = box.querySelectorAll("input[type=radio]");
      const pick = kind === "yes_no" ? radios[1] : radios[0];
      pick.closest("label").click();
      changed++;
    } else {
      const input = box.querySelector("input");
      if (input.value) continue;
      input.value = kind === "date" ? day : String(Math.max(1, Number(input.min || 1)));
      input.dispatchEvent(new Event("change", { bubbles: true }));
      changed++;
    }
  }
  return changed;
}
"""


PEN = """async ([selector, points]) => {
  const canvas = document.querySelector(selector);
  const r = canvas.getBoundingClientRect();
  const fire = (kind, [x, y, p]) => canvas.dispatchEvent(new PointerEvent(kind, {
    pointerId: 7, pointerType: "pen", isPrimary: true, bubbles: true, cancelable: true,
    clientX: r.left + x, clientY: r.top + y, pressure: kind === "pointerup" ? 0 : p,
    button: kind === "pointermove" ? -1 : 0, buttons: kind === "pointerup" ? 0 : 1,
  }));
  fire("pointerdown", points[0]);
  for (const pt of points.slice(1)) { await new Promise((d) => setTimeout(d, 8)); fire("pointermove", pt); }
  fire("pointerup", points[points.length - 1]);
}"""


def _sign(page, name: str) -> None:  # type: ignore[no-untyped-def]
    canvas = page.locator(f"[data-signature-input='{name}'] canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"], box["y"]
    page.mouse.move(x + 20, y + box["height"] * 0.6)
    page.mouse.down()
    for i in range(1, 12):
        page.mouse.move(x + 20 + i * 25, y + box["height"] * (0.6 - 0.3 * (i % 2)), steps=2)
    page.mouse.up()
    value = page.locator(f"input[name='{name}']").input_value()
    assert '"strokes"' in value


def _check_case(town: Town, token_or_latest: str | None, event_id: str) -> LifeCase:
    with town.db.session() as session:
        query = select(LifeCase).where(LifeCase.event_id == event_id)
        if token_or_latest:
            query = query.where(LifeCase.token == token_or_latest)
        case = session.exec(query.order_by(col(LifeCase.id).desc())).first()
        assert case is not None
        assert case.status is CaseStatus.SUBMITTED
        rows = session.exec(select(LifeCaseProcedure).where(LifeCaseProcedure.case_id == case.id)).all()
        assert rows, f"{event_id}: no procedures"
        signature = case.data["signatures"][0]
        assert signature["strokes"] and len(signature["strokes"][0]) >= 3
        assert case.data["event_date"] == _event_date(event_id).isoformat()
        return case


# Kiosk -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_id", EVENTS)
def test_kiosk(browser, town: Town, event_id: str) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="ja-JP", viewport={"width": 1080, "height": 810}, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    blocking: list[str] = []

    def check(name: str) -> None:
        if event_id == "tennyu":  # axe-core on every kiosk step, once
            blocking.extend(axe(page, f"kiosk-life-{name}"))

    try:
        page.goto(f"{town.url}/kiosk/{KIOSK}/")
        page.click(f"a[href='/kiosk/{KIOSK}/life']")
        check("events")
        page.click(f"button[data-event='{event_id}']")
        page.wait_for_url(re.compile(r".*/life/card$"))
        check("card")
        page.click("#without-card")  # the card path is tested with the simulated card elsewhere
        page.wait_for_url(re.compile(r".*/life/people$"))
        # Who it is about: the kiosk walk starts with "you"; add the others by touch.
        if event_id in ("shussei", "shibou"):
            page.click("button[value='add:子']" if event_id == "shussei" else "button[value='add:夫']")
            page.wait_for_url(re.compile(r".*/life/people$"))
        page.fill("input[name='p.new-1.birth_date']", "1985-06-01")
        page.click("input[name='p.new-1.sex'][value='1'] + span")
        if event_id in ("shussei", "shibou"):
            other = "1950-03-03" if event_id == "shibou" else _event_date(event_id).isoformat()
            page.fill("input[name='p.new-2.birth_date']", other)
            page.click("input[name='p.new-2.sex'][value='2'] + span")
            you = page.locator("input[name='p.new-1.subject']")
            if you.is_checked():
                you.uncheck()
            page.locator("input[name='p.new-2.subject']").check()
        else:
            page.locator("input[name='p.new-1.subject']").check()
        if event_id == "setai_henko":  # someone stays in the old household
            page.click("button[value='add:妻']")
            page.wait_for_url(re.compile(r".*/life/people$"))
            page.fill("input[name='p.new-2.birth_date']", "1987-02-02")
            page.locator("input[name='p.new-2.subject']").uncheck()
        check("people")
        page.click("button[value='next']")
        page.wait_for_url(re.compile(r".*/life/questions$"))
        check("questions")
        day = _event_date(event_id).isoformat()
        page.fill("#event_date", day)
        for _ in range(6):
            page.evaluate(ANSWER_VISIBLE, [".life-questions", (today_jst() - timedelta(days=1)).isoformat()])
            page.click("button[type=submit].primary")
            page.wait_for_load_state()
            if page.url.endswith("/life/result"):
                break
        assert page.url.endswith("/life/result"), page.locator(".field-problem").all_inner_texts()
        assert page.locator(".procedure").count() >= 1
        check("result")
        page.click(f"a[href='/kiosk/{KIOSK}/life/sign']")
        check("sign")
        _sign(page, "signature.resident")
        page.click("button[type=submit].primary")
        page.wait_for_url(re.compile(r".*/life/done$"))
        assert re.search(r"L-\d{4}", page.locator(".kiosk-number").inner_text())
        check("done")
    finally:
        context.close()
    assert not blocking, "\n".join(blocking)
    _check_case(town, None, event_id)


# Interview -------------------------------------------------------------------------------------


def _start_interview(page, town: Town, resident: Resident, event_id: str) -> str:  # type: ignore[no-untyped-def]
    """Sign in as the clerk, pick the resident and the event; returns the case token."""
    page.goto(f"{town.url}/staff/login")
    page.fill("#login_id", "clerk")
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/$"))
    page.goto(f"{town.url}/staff/interview?q={resident.atena_number}&event={event_id}")
    page.click("button.primary")
    page.wait_for_url(re.compile(r".*/staff/interview/[\w-]+$"))
    return str(page.url.rsplit("/", 1)[1])


def _resident_with_household(town: Town) -> Resident:
    return card_holder(town.db)


@pytest.mark.parametrize("event_id", EVENTS)
def test_interview(browser, town: Town, event_id: str) -> None:  # type: ignore[no-untyped-def]
    resident = _resident_with_household(town)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        token = _start_interview(page, town, resident, event_id)
        if event_id == "shussei":
            with page.expect_navigation():
                page.click("button[value='add']")
            key = page.locator("tr[data-person^='new-']").last.get_attribute("data-person")
            prefix = f"p.{key}."
            page.fill(f"input[name='{prefix}given_name']", "さくら")
            page.fill(f"input[name='{prefix}birth_date']", _event_date(event_id).isoformat())
            page.select_option(f"select[name='{prefix}sex']", "2")
            page.select_option(f"select[name='{prefix}relationship']", "子")
            page.locator(f"input[name='{prefix}subject']").check()
        elif event_id == "shibou":
            others = page.locator("tr[data-person] input[name$='.subject']")
            others.nth(others.count() - 1).check()
        elif event_id in ("setai_henko", "konin", "rikon"):
            page.locator(f"tr[data-person='{resident.atena_number}'] input[name$='.subject']").check()
        if event_id in ("tennyu", "tenkyo", "tenshutsu"):
            page.fill("input[name='new_address.postal_code']", "9918501")
            page.fill("input[name='new_address.address']", "山形県寒河江市中央一丁目9番45号")
        page.fill("#event_date", _event_date(event_id).isoformat())
        page.locator("#event_date").dispatch_event("change")
        page.wait_for_timeout(700)
        for _ in range(6):
            changed = page.evaluate(
                ANSWER_VISIBLE, ["#questions", (today_jst() - timedelta(days=1)).isoformat()]
            )
            page.wait_for_timeout(800)  # the autosave answers and may reveal follow-up questions
            if not changed:
                break
        assert page.locator("#result .procedure").count() >= 1
        if event_id == "tennyu":
            found = axe(page, "interview")
            assert not found, "\n".join(found)
        _sign(page, "signature.resident")
        _sign(page, "signature.clerk")
        page.check("input[name='confirmed']")
        with page.expect_navigation():
            page.click("button[formaction$='/submit']")
        assert re.search(rf"/staff/cases/{token}\?submitted=1$", page.url), page.locator(
            ".field-problem, .error"
        ).all_inner_texts()
    finally:
        context.close()
    case = _check_case(town, token, event_id)
    assert {s["role"] for s in case.data["signatures"]} == {"resident", "clerk"}


def test_pen_pressure_signature_reaches_the_forms_pdf(browser, town: Town, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A signature drawn with synthetic pen events (pressure 0.2 → 0.9) is kept as vectors with those
    pressures and is drawn inside the 申請内容票's signature box of the PDF staff print."""
    from tests.test_forms_pdf import dark_pixels, page_image, signature_boxes

    resident = _resident_with_household(town)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        token = _start_interview(page, town, resident, "tenkyo")
        page.fill("input[name='new_address.address']", "山形県寒河江市中央二丁目2番2号")
        page.fill("#event_date", _event_date("tenkyo").isoformat())
        page.locator("#event_date").dispatch_event("change")
        page.wait_for_timeout(700)
        for _ in range(6):
            changed = page.evaluate(
                ANSWER_VISIBLE, ["#questions", (today_jst() - timedelta(days=1)).isoformat()]
            )
            page.wait_for_timeout(800)
            if not changed:
                break
        stroke = [[30 + i * 12, 60 + (i % 5) * 12, round(0.2 + 0.7 * i / 29, 3)] for i in range(30)]
        for name in ("signature.resident", "signature.clerk"):
            selector = f"[data-signature-input='{name}'] canvas"
            page.locator(selector).scroll_into_view_if_needed()
            page.evaluate(PEN, [selector, stroke])
        page.check("input[name='confirmed']")
        with page.expect_navigation():
            page.click("button[formaction$='/submit']")
        assert f"/staff/cases/{token}" in page.url
        response = page.request.get(f"{town.url}/staff/cases/{token}/forms.pdf?form=application_summary")
        assert response.status == 200
        pdf = response.body()
    finally:
        context.close()
    with town.db.session() as session:
        case = session.exec(select(LifeCase).where(LifeCase.token == token)).one()
        from app.services.cases import case_data

        data = case_data(case)
    resident_signature = case.data["signatures"][0]
    assert resident_signature["pointer_type"] == "pen"
    pressures = [pt[3] for s in resident_signature["strokes"] for pt in s]
    assert min(pressures) < 0.35 and max(pressures) > 0.75  # the pen's pressure, not a constant
    boxes = [b for b in signature_boxes(data, ["application_summary"])]
    assert boxes, "no signature box on the 申請内容票"
    number, (left, top, right, bottom) = boxes[0]
    image = page_image(pdf, tmp_path, number)
    scale = 100 / 96  # CSS px → 100 dpi pixels
    inside = dark_pixels(
        image, (int(left * scale), int(top * scale), int(right * scale), int(bottom * scale))
    )
    assert inside > 30, "the signature is not drawn inside its box"


SPEECH_STUB = """
window.__spoken = [];
if (window.speechSynthesis) {
  window.speechSynthesis.speak = (u) => window.__spoken.push({ text: u.text, lang: u.lang, rate: u.rate });
  window.speechSynthesis.cancel = () => {};
}
"""


def test_voice_guidance_reads_each_page_until_the_walk_ends(browser, town: Town) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="ja-JP", viewport={"width": 1080, "height": 810})
    context.add_init_script(SPEECH_STUB)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(f"{town.url}/kiosk/{KIOSK}/")
        voice = page.locator("[data-voice-switch]")
        assert voice.get_attribute("aria-pressed") == "false"
        assert page.evaluate("window.__spoken.length") == 0  # silent until asked
        voice.click()
        spoken = page.evaluate("window.__spoken")
        assert spoken and spoken[0]["lang"] == "ja-JP" and "ようこそ" in spoken[0]["text"]
        page.click(f"a[href='/kiosk/{KIOSK}/life']")
        page.wait_for_url(re.compile(r".*/life$"))
        page.wait_for_function("window.__spoken.length > 0")
        assert "どのような届出ですか" in page.evaluate("window.__spoken[0].text")
        page.click("button[data-furigana-switch]")  # ruby readings are not read twice
        page.wait_for_function("window.__spoken.length > 0")
        assert "<rt>" not in page.content() or "てんにゅう" not in page.evaluate("window.__spoken[0].text")
        page.goto(f"{town.url}/kiosk/{KIOSK}/life?lang=en")
        page.wait_for_function("window.__spoken.length > 0")
        assert page.evaluate("window.__spoken[0].lang") == "en-US"
        page.goto(f"{town.url}/kiosk/{KIOSK}/")  # the start page ends the walk: voice off again
        assert page.locator("[data-voice-switch]").get_attribute("aria-pressed") == "false"
    finally:
        context.close()


def test_interview_marks_and_clears_field_problems_as_you_type(browser, town: Town) -> None:  # type: ignore[no-untyped-def]
    resident = _resident_with_household(town)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        _start_interview(page, town, resident, "tenkyo")
        box = page.locator("[data-field='new_address.address']")
        assert "has-problem" in (box.get_attribute("class") or "")  # 転居 needs the new address
        page.fill("input[name='new_address.address']", "山形県寒河江市中央二丁目2番2号")
        page.locator("input[name='new_address.address']").dispatch_event("change")
        page.wait_for_function(
            "!document.querySelector(\"[data-field='new_address.address']\").classList.contains('has-problem')"
        )
        assert box.locator(".field-problem").count() == 0
        page.fill("input[name='new_address.postal_code']", "12-34")
        page.locator("input[name='new_address.postal_code']").dispatch_event("change")
        page.wait_for_selector("[data-field='new_address.postal_code'].has-problem .field-problem")
        assert (
            "郵便番号" in page.locator("[data-field='new_address.postal_code'] .field-problem").inner_text()
        )
        assert page.input_value("input[name='new_address.postal_code']") == "12-34"  # kept as typed
    finally:
        context.close()
