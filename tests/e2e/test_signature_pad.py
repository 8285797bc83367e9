"""The signature pad in Chromium: pen pressure, virtual pressure from speed, undo, clear, ink,
resizing, high-DPI, HTMX-swapped pads, and the JSON accepted by parse_signature.

A throwaway Starlette app serves the macro and static/ (the pad has no production page yet).
Pointer events are synthetic `PointerEvent`s dispatched on the canvas.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.domain.cases import SignatureRole
from app.domain.signature import SignatureError, parse_signature, signature_stats
from app.web.templating import STATIC_DIR, make_templates
from tests.conftest import _free_port
from tests.e2e.test_accessibility import axe

pytestmark = pytest.mark.e2e

PAGE = """{% from "_signature_pad.html" import signature_pad, signature_assets %}<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>署名</title>
<link rel="stylesheet" href="/static/css/kiosk.css">
{{ signature_assets() }}<script src="/static/vendor/htmx.min.js" defer></script></head>
<body class="kiosk"><main class="kiosk-main">
<h1>署名のテスト</h1>
<form id="form" method="post" action="/submit">
{{ signature_pad("resident_signature", "届出人の署名") }}
<button type="submit" class="primary" id="send">送信</button>
</form>
<button type="button" id="more" hx-get="/fragment" hx-target="#later">もう一つ</button>
<div id="later"></div>
</main></body></html>"""

PREFILLED = """{% from "_signature_pad.html" import signature_pad, signature_assets %}<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>署名</title>{{ signature_assets() }}</head>
<body><main><h1>もう一度</h1><form>
{{ signature_pad("resident_signature", "届出人の署名", value=value, error=error) }}
</form></main></body></html>"""
SAVED = {
    "width": 500,
    "height": 194,
    "pointer_type": "touch",
    "strokes": [[[20, 50, 0, 0.5], [200, 120, 80, 0.62]]],
}

FRAGMENT = """{% from "_signature_pad.html" import signature_pad %}
<form id="form2">{{ signature_pad("clerk_signature", "受付者の署名", required=False) }}</form>"""

# Dispatches a stroke: points are [x, y, pressure, ms to wait before the point].
DRAW = """async ({selector, points, type, id}) => {
  const canvas = document.querySelector(selector);
  const r = canvas.getBoundingClientRect();
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const fire = (kind, [x, y, p]) => canvas.dispatchEvent(new PointerEvent(kind, {
    pointerId: id, pointerType: type, isPrimary: true, bubbles: true, cancelable: true,
    clientX: r.left + x, clientY: r.top + y, pressure: kind === "pointerup" ? 0 : p,
    button: kind === "pointermove" ? -1 : 0, buttons: kind === "pointerup" ? 0 : 1,
  }));
  fire("pointerdown", points[0]);
  for (const pt of points.slice(1)) { if (pt[3]) await sleep(pt[3]); fire("pointermove", pt); }
  fire("pointerup", points[points.length - 1]);
}"""

INK = """(selector) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
  return inked;
}"""

PAD = "[data-signature-input=resident_signature]"
CANVAS = f"{PAD} canvas"


@pytest.fixture(scope="module")
def pad_server() -> Iterator[str]:
    templates = make_templates()

    async def page(request: Request) -> Response:
        return HTMLResponse(templates.env.from_string(PAGE).render())

    async def prefilled(request: Request) -> Response:
        page = templates.env.from_string(PREFILLED)
        return HTMLResponse(
            page.render(value=json.dumps(SAVED), error="署名が短すぎます。もう一度書いてください")
        )

    async def fragment(request: Request) -> Response:
        return HTMLResponse(templates.env.from_string(FRAGMENT).render())

    async def submit(request: Request) -> Response:
        form = await request.form()
        raw = str(form.get("resident_signature", ""))
        try:
            sig = parse_signature(raw, SignatureRole.RESIDENT, datetime.now(UTC))
        except SignatureError as error:
            return JSONResponse({"error": error.message_ja}, status_code=422)
        stats = json.dumps(signature_stats(sig).to_dict())
        return HTMLResponse(f"<!doctype html><title>ok</title><pre id=stats>{stats}</pre>")

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/fragment", fragment),
            Route("/prefilled", prefilled),
            Route("/submit", submit, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "pad server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def open_pad(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function(
        "() => window.MadoguchiSignature && MadoguchiSignature.get(document.querySelector('[data-signature-pad]'))"
    )


def draw(
    page: Any,
    points: list[list[float]],
    pointer_type: str = "pen",
    pointer_id: int = 7,
    selector: str = CANVAS,
) -> None:
    page.evaluate(DRAW, {"selector": selector, "points": points, "type": pointer_type, "id": pointer_id})


def value(page: Any, name: str = "resident_signature") -> Any:
    raw = page.input_value(f"input[name={name}]")
    return json.loads(raw) if raw else None


def test_pen_pressure_reaches_the_hidden_input(page: Any, pad_server: str) -> None:
    open_pad(page, pad_server)
    page.evaluate(
        "() => { window.changes = []; document.addEventListener('signature:change', (e) => changes.push(e.detail.strokes)); }"
    )
    pressures = [0.1, 0.25, 0.5, 0.75, 0.913, 1000 / 4095, 1.0]
    draw(page, [[40 + i * 30, 100 + (i % 2) * 20, p, 10] for i, p in enumerate(pressures)])
    data = value(page)
    assert data["pointer_type"] == "pen"
    box = page.locator(CANVAS).bounding_box()
    assert (data["width"], data["height"]) == (round(box["width"], 1), round(box["height"], 1))
    assert data["height"] == 200 - 6  # 200 px minus the 3 px border either side
    (stroke,) = data["strokes"]
    assert [pt[3] for pt in stroke] == [round(p, 4) for p in pressures]
    assert [pt[0] for pt in stroke] == [40 + i * 30 for i in range(len(pressures))]
    assert [pt[2] for pt in stroke] == sorted(pt[2] for pt in stroke) and stroke[0][2] == 0
    assert stroke[-1][2] >= 50  # six waits of 10 ms
    assert page.evaluate("() => changes") == [1]
    assert page.evaluate(INK, CANVAS) > 200
    assert page.locator(".signature-placeholder").is_hidden()


def test_touch_pressure_follows_speed(page: Any, pad_server: str) -> None:
    open_pad(page, pad_server)
    slow = [[20 + i * 1.0, 100, 0.5, 25] for i in range(25)]  # 1 px per 25 ms
    fast = [[45 + i * 60.0, 100 + (i % 2) * 4, 0.5, 16] for i in range(1, 15)]  # ~60 px per 16 ms
    draw(page, slow + fast, pointer_type="touch")
    data = value(page)
    assert data["pointer_type"] == "touch"
    (stroke,) = data["strokes"]
    ps = [pt[3] for pt in stroke]
    assert ps[0] == 0.5
    slow_end, fast_end = ps[len(slow) - 1], ps[-1]
    assert slow_end > 0.7, ps
    assert fast_end < 0.35, ps
    assert all(0 <= p <= 1 for p in ps)
    # Smoothed: no jump from heavy to light in one point.
    assert max(abs(a - b) for a, b in zip(ps, ps[1:], strict=False)) < 0.3
    # Mouse and touch carrying the 0.5 default still get virtual pressure.
    page.click("[data-signature-clear]")
    draw(page, slow + fast, pointer_type="mouse", pointer_id=1)
    mouse = [pt[3] for pt in value(page)["strokes"][0]]
    assert mouse[len(slow) - 1] > 0.7 and mouse[-1] < 0.35


def test_undo_and_clear(page: Any, pad_server: str) -> None:
    open_pad(page, pad_server)
    undo, clear = page.locator("[data-signature-undo]"), page.locator("[data-signature-clear]")
    assert undo.is_disabled() and clear.is_disabled()
    assert undo.inner_text() == "1画もどす" and clear.inner_text() == "書き直す"
    draw(page, [[30 + i * 12, 60 + i * 3, 0.6, 5] for i in range(20)])
    one = page.evaluate(INK, CANVAS)
    draw(page, [[40 + i * 10, 150 - i * 2, 0.9, 5] for i in range(20)], pointer_id=8)
    two = page.evaluate(INK, CANVAS)
    assert len(value(page)["strokes"]) == 2 and two > one > 0
    undo.click()
    assert len(value(page)["strokes"]) == 1
    assert page.evaluate(INK, CANVAS) == one  # redrawn from the vectors: the same pixels
    undo.click()
    assert value(page) is None and page.evaluate(INK, CANVAS) == 0
    assert undo.is_disabled()
    draw(page, [[30 + i * 12, 60, 0.6, 5] for i in range(20)])
    draw(page, [[30 + i * 12, 120, 0.6, 5] for i in range(20)])
    clear.click()
    assert value(page) is None
    assert page.evaluate(INK, CANVAS) == 0
    assert page.locator(".signature-placeholder").is_visible()


def test_resize_and_high_dpi_keep_the_strokes(browser: Any, pad_server: str) -> None:
    context = browser.new_context(
        locale="ja-JP", viewport={"width": 1000, "height": 800}, device_scale_factor=2
    )
    page = context.new_page()
    try:
        open_pad(page, pad_server)
        size = page.evaluate(
            f"() => {{ const c = document.querySelector('{CANVAS}'); return [c.width, c.height, c.clientWidth, c.clientHeight]; }}"
        )
        assert size[0] == size[2] * 2 and size[1] == size[3] * 2
        draw(page, [[50 + i * 20, 80 + (i % 3) * 10, 0.5 + i * 0.02, 8] for i in range(20)])
        before = value(page)
        ink = page.evaluate(INK, CANVAS)
        page.set_viewport_size({"width": 600, "height": 800})
        page.wait_for_function(f"() => document.querySelector('{CANVAS}').clientWidth < 600")
        page.wait_for_timeout(100)
        assert value(page) == before  # vectors stay in the space they were drawn in
        assert 0 < page.evaluate(INK, CANVAS) < ink  # drawn again, smaller
        # A stroke drawn at the new size is mapped into the same space (the scale is < 1).
        draw(page, [[10, 20, 0.5, 0], [300, 20, 0.5, 10]])
        after = value(page)
        assert after["width"] == before["width"]
        assert after["strokes"][1][-1][0] > 300  # 300 CSS px now is further along the original pad
    finally:
        context.close()


def test_required_pad_stops_an_empty_submit_and_the_server_accepts_a_signature(
    page: Any, pad_server: str
) -> None:
    open_pad(page, pad_server)
    page.click("#send")
    error = page.locator("[data-signature-error]").first
    assert error.inner_text() == "署名をしてください"
    assert page.url.rstrip("/") == pad_server
    draw(page, [[40 + i * 15, 100 + 20 * ((i % 4) - 2), 0.4 + (i % 5) * 0.1, 6] for i in range(30)])
    assert error.is_hidden()
    with page.expect_navigation():
        page.click("#send")
    stats = json.loads(page.locator("#stats").inner_text())
    assert stats["strokes"] == 1 and stats["points"] == 30 and stats["pointer_type"] == "pen"
    assert stats["pressure_min"] == 0.4 and stats["pressure_max"] == 0.8


def test_pads_in_htmx_swapped_content(page: Any, pad_server: str) -> None:
    open_pad(page, pad_server)
    page.click("#more")
    second = "[data-signature-input=clerk_signature]"
    page.wait_for_function(f"() => MadoguchiSignature.get(document.querySelector('{second}'))")
    draw(page, [[30 + i * 20, 90, 0.7, 5] for i in range(10)], selector=f"{second} canvas")
    assert value(page, "clerk_signature")["strokes"][0][0][:2] == [30, 90]
    assert value(page) is None  # the first pad is untouched
    assert page.evaluate("() => Object.keys(window).filter((k) => /signature/i.test(k))") == [
        "MadoguchiSignature"
    ]


def test_accessibility_of_the_pad(page: Any, pad_server: str) -> None:
    open_pad(page, pad_server)
    canvas = page.locator(CANVAS)
    assert canvas.get_attribute("role") == "img"
    label = page.locator(f"#{canvas.get_attribute('aria-labelledby')}").inner_text()
    assert label.startswith("届出人の署名")
    note = page.locator(f"#{canvas.get_attribute('aria-describedby')}").inner_text()
    assert "職員" in note
    buttons = page.locator(f"{PAD} button")
    assert buttons.count() == 2
    assert all(buttons.nth(i).get_attribute("type") == "button" for i in range(2))
    assert page.evaluate(f"() => getComputedStyle(document.querySelector('{CANVAS}')).touchAction") == "none"
    page.click("#send")  # the error shown, as well as the pad
    assert axe(page, "signature pad") == []
    draw(page, [[30 + i * 20, 90, 0.7, 5] for i in range(10)])
    assert axe(page, "signature pad with ink") == []


def test_a_signature_given_back_by_the_server_is_shown_again(page: Any, pad_server: str) -> None:
    open_pad(page, f"{pad_server}/prefilled")
    assert value(page) == SAVED
    assert page.evaluate(INK, CANVAS) > 100
    assert page.locator("[data-signature-undo]").is_enabled()
    error = page.locator("[data-signature-error]")
    assert error.inner_text() == "署名が短すぎます。もう一度書いてください"
    draw(page, [[30 + i * 20, 150, 0.7, 5] for i in range(10)], pointer_type="touch")
    assert error.is_hidden()  # writing again clears the server's message
    data = value(page)
    assert data["strokes"][0] == SAVED["strokes"][0] and len(data["strokes"]) == 2
    assert data["width"] == 500  # the saved pad's space, not the new size
