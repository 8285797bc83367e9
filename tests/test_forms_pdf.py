"""Pre-filled forms as PDFs, checked from the outside: poppler's pdftotext / pdftoppm / pdfimages
and zxing-cpp for the QR codes. The case is a family of four moving in (転入): two adults, a child
of 8 and a baby, with old and new addresses and the procedures the rules would find."""

from __future__ import annotations

import io
import math
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import weasyprint
import zxingcpp
from PIL import Image

from app.domain.cases import (
    Address,
    CaseData,
    CaseMode,
    CaseProcedure,
    Person,
    ProcedureStatus,
    Signature,
    SignatureRole,
    StrokePoint,
)
from app.printing.forms import (
    PRINTABLE_FORMS,
    SIGNATURE_BOX_MM,
    children,
    prepare_forms,
    question_texts,
    render_form,
    render_forms,
)
from app.printing.pdf import PdfLayoutError, font_configuration, stylesheet
from app.printing.signature import signature_svg

pytestmark = pytest.mark.slow

BASE = "https://madoguchi.example.jp"
FILED = date(2026, 11, 20)
NEW = Address("991-0021", "山形県寒河江市中央一丁目9番45号", "寒河江ハイツ201")
OLD = Address("100-0013", "東京都千代田区霞が関一丁目1番1号", "霞が関マンション305")
ALL_FORMS = list(PRINTABLE_FORMS)


def wave(role: SignatureRole, strokes: int = 3) -> Signature:
    """Synthetic handwriting: sine strokes across a 480×160 pad, pressure rising along each."""
    drawn = []
    for k in range(strokes):
        drawn.append(
            tuple(
                StrokePoint(40 + k * 140 + i * 2.5, 80 + 45 * math.sin(i / 6 + k), i * 8, 0.15 + i / 60)
                for i in range(48)
            )
        )
    return Signature(role, 480, 160, tuple(drawn), "pen", datetime(2026, 11, 20, 10, 5))


def person(
    key: str, family: str, given: str, fkana: str, gkana: str, birth: date, sex: str, rel: str
) -> Person:
    return Person(key, family, given, fkana, gkana, birth, sex, rel, resident_code=f"1234567890{key[-1]}")


TARO = person("new-1", "山田", "太郎", "やまだ", "たろう", date(1988, 6, 1), "1", "世帯主")
HANAKO = person("new-2", "山田", "花子", "やまだ", "はなこ", date(1990, 2, 14), "2", "妻")
ICHIRO = person("new-3", "山田", "一郎", "やまだ", "いちろう", date(2018, 5, 5), "1", "子")
SAKURA = person("new-4", "山田", "桜", "やまだ", "さくら", date(2026, 3, 3), "2", "子")


def procedure(
    pid: str,
    name: str,
    dept: str,
    dept_name: str,
    keys: tuple[str, ...],
    forms: tuple[str, ...],
    **extra: Any,
) -> CaseProcedure:
    fields: dict[str, Any] = {
        "procedure_id": pid,
        "name": name,
        "department_id": dept,
        "department_name": dept_name,
        "service_id": pid,
        "member_keys": keys,
        "forms": forms,
        "why": ("転入されたため",),
        "bring": ("本人確認書類",),
        "deadline": date(2026, 11, 28),
    }
    fields.update(extra)
    return CaseProcedure(**fields)


PROCEDURES = (
    procedure(
        "tennyu_todoke",
        "転入届（住民異動届）",
        "shimin",
        "市民課",
        (),
        ("idou_todoke", "guide_sheet", "application_summary"),
        bring=("転出証明書", "届出に来た方の本人確認書類"),
    ),
    procedure(
        "card", "マイナンバーカードの住所変更", "shimin", "市民課", ("new-1", "new-2"), ("card_face_change",)
    ),
    procedure(
        "kokuho",
        "国民健康保険の加入",
        "hoken_nenkin",
        "保険年金課",
        ("new-1", "new-3", "new-4"),
        ("kokuho_shikaku",),
        why=("職場の健康保険に入っていない方がいるため",),
    ),
    procedure(
        "jido",
        "児童手当の認定請求",
        "kosodate",
        "子育て支援課",
        (),
        ("jido_teate_nintei",),
        deadline=date(2026, 11, 29),
    ),
    procedure(
        "iryo",
        "子育て支援医療証の交付",
        "kosodate",
        "子育て支援課",
        ("new-3", "new-4"),
        ("kosodate_iryo",),
        deadline=None,
    ),
    procedure("school", "小学校の転入学", "gakko", "学校教育課", ("new-3",), ("tenkogaku",), deadline=None),
)


def family_case(**changes: Any) -> CaseData:
    case = CaseData(
        token="Tk3xQ9-opaque",
        number="転入-0003",
        event_id="tennyu",
        event_name="転入",
        event_date=date(2026, 11, 14),
        filed_on=FILED,
        mode=CaseMode.INTERVIEW,
        applicant=replace(TARO, source="card"),
        members=(TARO, HANAKO, ICHIRO, SAKURA),
        new_address=NEW,
        old_address=OLD,
        new_head="山田　太郎",
        old_head="山田　太郎",
        applicant_relation="本人",
        phone="0237-86-2111",
        answers={"moved_from": "other_city", "has_dog": False, "tenshutsu_method": "certificate"},
        procedures=PROCEDURES,
        signatures=(wave(SignatureRole.RESIDENT), wave(SignatureRole.CLERK, 2)),
        municipality="寒河江市",
        location="本庁舎 市民課",
        clerk="佐藤　一郎",
    )
    return replace(case, **changes)


# --- helpers -------------------------------------------------------------------------------------------


def pdf_text(pdf: bytes, tmp_path: Path, first: int | None = None, last: int | None = None) -> str:
    path = tmp_path / "forms.pdf"
    path.write_bytes(pdf)
    pages = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    return subprocess.run(
        ["pdftotext", "-layout", *pages, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def compact(text: str) -> str:
    return re.sub(r"\s+", "", text)


def page_image(pdf: bytes, tmp_path: Path, page: int, dpi: int = 100) -> Image.Image:
    path = tmp_path / "page.pdf"
    path.write_bytes(pdf)
    png = subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page), "-png", str(path)],
        capture_output=True,
        check=True,
    ).stdout
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("L")


def _boxes(box: Any) -> Iterator[Any]:
    yield box
    for child in getattr(box, "children", ()):
        yield from _boxes(child)


def signature_boxes(
    case: CaseData, form_ids: list[str]
) -> list[tuple[int, tuple[float, float, float, float]]]:
    """(page, (left, top, right, bottom) in CSS px) of every signature box, from WeasyPrint's layout
    of the same HTML the renderer prints."""
    prepared = prepare_forms(case, form_ids, base_url=BASE)
    document = weasyprint.HTML(string=prepared.html).render(
        stylesheets=[stylesheet(s) for s in prepared.stylesheets], font_config=font_configuration()
    )
    found = []
    for number, page in enumerate(document.pages, start=1):
        for box in _boxes(page._page_box):
            element = getattr(box, "element", None)
            if (
                element is not None
                and "sig-box" in (element.get("class") or "").split()
                and box.element_tag == "div"
            ):
                x, y = box.position_x, box.position_y
                found.append((number, (x, y, x + box.border_width(), y + box.border_height())))
    return found


def dark_pixels(image: Image.Image, region: tuple[int, int, int, int] | None = None) -> int:
    area = image.crop(region) if region else image
    return sum(1 for value in area.tobytes() if value < 128)


@pytest.fixture(scope="module")
def whole_set() -> Any:
    return render_forms(family_case(), ALL_FORMS, base_url=BASE)


# --- every form ----------------------------------------------------------------------------------------


def test_printable_forms_are_the_fourteen_of_forms_yaml() -> None:
    from app.domain.lifeevents import load_catalog

    printable = {f.id for f in load_catalog().forms if f.printable}
    assert set(PRINTABLE_FORMS) == printable
    assert len(PRINTABLE_FORMS) == 14
    for template in PRINTABLE_FORMS.values():
        assert (Path(__file__).resolve().parent.parent / "print" / "forms" / template).is_file()


def test_every_form_renders_prefilled_for_a_family_of_four(whole_set: Any, tmp_path: Path) -> None:
    assert whole_set.form_ids == tuple(ALL_FORMS)
    assert set(whole_set.form_pages) == set(ALL_FORMS)
    assert sum(count for _, count in whole_set.form_pages.values()) == whole_set.pages
    for form_id in ALL_FORMS:
        first, count = whole_set.form_pages[form_id]
        text = compact(pdf_text(whole_set.pdf, tmp_path, first, first + count - 1))
        assert "None" not in text, form_id
        assert "山田太郎" in text, form_id
        assert "令和8年11月20日" in text, form_id  # 届出年月日 / 受付日 in 和暦
        if form_id != "guide_sheet":
            assert "寒河江市長殿" in text, form_id
            assert "やまだたろう" in text, form_id  # ふりがな
            assert "昭和63年6月1日" in text, form_id  # the applicant's birth date in 和暦
        if form_id not in (
            "guide_sheet",
            "tax_certificate_request",
            "juminhyo_request",
            "pin_reset",
            "residence_period_change",
        ):
            assert "寒河江市中央一丁目9番45号" in text, form_id


def test_idou_todoke_lists_every_mover_with_addresses_and_heads(whole_set: Any, tmp_path: Path) -> None:
    first, count = whole_set.form_pages["idou_todoke"]
    assert count == 1
    text = compact(pdf_text(whole_set.pdf, tmp_path, first, first))
    assert "住民異動届" in text
    assert "■転入" in text and "□転出" in text
    assert "令和8年11月14日" in text  # 異動日
    for name, kana, birth in [
        ("山田太郎", "やまだたろう", "昭和63年6月1日"),
        ("山田花子", "やまだはなこ", "平成2年2月14日"),
        ("山田一郎", "やまだいちろう", "平成30年5月5日"),
        ("山田桜", "やまださくら", "令和8年3月3日"),
    ]:
        assert name in text and kana in text and birth in text
    for part in (
        "〒991-0021",
        "寒河江ハイツ201",
        "〒100-0013",
        "東京都千代田区霞が関一丁目1番1号",
        "霞が関マンション305",
    ):
        assert part in text
    assert "世帯主" in text and "妻" in text and "0237-86-2111" in text
    assert "異動者との関係本人" in text


def test_foreign_residents_birth_dates_are_in_seireki(tmp_path: Path) -> None:
    john = Person(
        "new-5", "SMITH", "JOHN", "スミス", "ジョン", date(1985, 3, 4), "1", "同居人", nationality="ブラジル"
    )
    rendered = render_form(family_case(members=(TARO, john)), "idou_todoke")
    text = compact(pdf_text(rendered.pdf, tmp_path))
    assert "1985年3月4日" in text and "昭和60年" not in text
    assert "ブラジル" in text


def test_rare_characters_of_names_are_set_in_ipamj(tmp_path: Path) -> None:
    yoshi = "\U00020bb7"  # 𠮷, not in IPAex明朝
    taro = replace(TARO, family_name=f"{yoshi}田")
    rendered = render_form(family_case(applicant=taro, members=(taro, HANAKO)), "idou_todoke")
    path = tmp_path / "mj.pdf"
    path.write_bytes(rendered.pdf)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "IPAmjMincho" in fonts
    assert f"{yoshi}田太郎" in compact(pdf_text(rendered.pdf, tmp_path))


def test_a_household_of_six_takes_two_idou_todoke_sheets(tmp_path: Path) -> None:
    extra = (
        person("new-5", "山田", "五郎", "やまだ", "ごろう", date(1950, 1, 2), "1", "父"),
        person("new-6", "山田", "六子", "やまだ", "むつこ", date(1952, 3, 4), "2", "母"),
    )
    case = family_case(members=(TARO, HANAKO, ICHIRO, SAKURA, *extra))
    rendered = render_form(case, "idou_todoke")
    assert rendered.pages == 2
    assert rendered.form_pages["idou_todoke"] == (1, 2)
    page1 = compact(pdf_text(rendered.pdf, tmp_path, 1, 1))
    page2 = compact(pdf_text(rendered.pdf, tmp_path, 2, 2))
    assert "（1枚目／全2枚）" in page1 and "（2枚目／全2枚）" in page2
    assert "山田桜" in page1 and "山田五郎" not in page1
    assert "山田五郎" in page2 and "山田六子" in page2 and "昭和25年1月2日" in page2
    assert "寒河江市長殿" in page2  # each sheet is a whole form


def test_kokuho_lists_the_members_of_the_procedure(whole_set: Any, tmp_path: Path) -> None:
    first, _ = whole_set.form_pages["kokuho_shikaku"]
    text = compact(pdf_text(whole_set.pdf, tmp_path, first, first))
    assert "■資格取得" in text
    assert "山田一郎" in text and "山田桜" in text
    assert "山田花子" not in text  # not in the procedure's member_keys


def test_child_forms_list_the_children_under_18(whole_set: Any, tmp_path: Path) -> None:
    for form_id in ("jido_teate_nintei", "kosodate_iryo", "jido_teate_gakukaitei", "jido_teate_shometsu"):
        first, _ = whole_set.form_pages[form_id]
        text = compact(pdf_text(whole_set.pdf, tmp_path, first, first))
        assert "山田一郎" in text and "平成30年5月5日" in text and "満8歳" in text, form_id
        assert "山田桜" in text and "満0歳" in text, form_id
        assert "児童との関係父" in text, form_id
    first, _ = whole_set.form_pages["jido_teate_nintei"]
    assert "山田花子" in compact(pdf_text(whole_set.pdf, tmp_path, first, first))  # 配偶者


def test_children_follow_the_child_allowance_age_rule() -> None:
    # Born 2008-04-02: reaches 18 on 2026-04-01, a 児童 until 2027-03-31; born 2008-04-01: until 2026-03-31.
    younger = person("c-1", "山田", "若", "やまだ", "わか", date(2008, 4, 2), "1", "子")
    older = person("c-2", "山田", "長", "やまだ", "ちょう", date(2008, 4, 1), "1", "子")
    unborn = person("c-3", "山田", "未", "やまだ", "み", date(2026, 12, 1), "1", "子")
    case = family_case(members=(TARO, younger, older, unborn))
    assert [m.key for m in children(case)] == ["c-1"]


def test_missing_data_leaves_empty_boxes_never_none(tmp_path: Path) -> None:
    bare_applicant = Person("new-1", family_name="山田", given_name="太郎")
    case = CaseData(
        token="t",
        number="",
        event_id="tennyu",
        event_name="",
        event_date=None,
        filed_on=FILED,
        mode=CaseMode.KIOSK,
        applicant=bare_applicant,
        members=(bare_applicant, Person("new-2")),
        procedures=(
            procedure("x", "転入届", "shimin", "", (), ("idou_todoke",), deadline=None, bring=(), why=()),
        ),
    )
    rendered = render_forms(case, ALL_FORMS)
    text = pdf_text(rendered.pdf, tmp_path)
    assert "None" not in text and "none" not in text
    assert "〒" in text  # the empty address box still prints
    assert re.search(r"^\s+長\s+殿", text, re.MULTILINE)  # addressee with the municipality left blank


# --- 手続き案内票 and 申請内容票 ----------------------------------------------------------------------------


def test_guide_sheet_groups_procedures_by_department_with_deadlines(whole_set: Any, tmp_path: Path) -> None:
    first, count = whole_set.form_pages["guide_sheet"]
    text = compact(pdf_text(whole_set.pdf, tmp_path, first, first + count - 1))
    assert "受付番号転入-0003" in text
    order = [text.index(name) for name in ("市民課", "保険年金課", "子育て支援課", "学校教育課")]
    assert order == sorted(order)
    assert "令和8年11月28日まで（あと8日）" in text
    assert "令和8年11月29日まで（あと9日）" in text
    assert "転出証明書" in text and "職場の健康保険に入っていない方がいるため" in text
    assert "山田太郎、山田花子" in text  # whom the card procedure is for


def test_guide_sheet_qr_codes_decode_to_the_case_and_department_urls(whole_set: Any, tmp_path: Path) -> None:
    first, count = whole_set.form_pages["guide_sheet"]
    decoded: set[str] = set()
    for page in range(first, first + count):
        decoded |= {
            r.text for r in zxingcpp.read_barcodes(page_image(whole_set.pdf, tmp_path, page, dpi=200))
        }
    case_url = f"{BASE}/cases/scan/Tk3xQ9-opaque"
    assert decoded == {
        case_url,
        f"{case_url}?d=shimin",
        f"{case_url}?d=hoken_nenkin",
        f"{case_url}?d=kosodate",
        f"{case_url}?d=gakko",
    }


def test_guide_sheet_qr_codes_are_vectors(tmp_path: Path) -> None:
    rendered = render_form(family_case(signatures=()), "guide_sheet", base_url=BASE)
    path = tmp_path / "guide.pdf"
    path.write_bytes(rendered.pdf)
    images = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert len(images.strip().splitlines()) == 2  # the header lines only: no raster image


def test_question_texts_come_from_the_rules() -> None:
    from app.domain.lifeevents import load_catalog

    event = load_catalog().event("tennyu")
    assert event is not None
    questions, choices = question_texts(event)
    assert questions["moved_from"] == "どこから引っ越してきましたか？"
    assert choices["moved_from"]["other_city"] == "国内のほかの市区町村"
    assert "has_dog" not in choices  # yes / no questions have no choices


def test_summary_prints_answers_with_question_texts(tmp_path: Path) -> None:
    rendered = render_form(
        family_case(),
        "application_summary",
        questions={"moved_from": "どこから引っ越してきましたか？", "has_dog": "犬を飼っていますか？"},
        choices={"moved_from": {"other_city": "国内のほかの市区町村"}},
    )
    text = compact(pdf_text(rendered.pdf, tmp_path))
    assert "どこから引っ越してきましたか？国内のほかの市区町村" in text
    assert "犬を飼っていますか？いいえ" in text
    assert "tenshutsu_methodcertificate" in text  # no text given: the id and the value
    assert "■マイナンバーカード" in text  # identity read from the card
    assert "佐藤一郎" in text
    assert "署名日令和8年11月20日" in text
    for name in ("山田太郎", "山田花子", "山田一郎", "山田桜"):
        assert name in text


# --- signatures -----------------------------------------------------------------------------------------


def _ink_inside_and_outside(
    pdf: bytes, blank_pdf: bytes, boxes: list[tuple[int, tuple[float, float, float, float]]], tmp_path: Path
) -> list[tuple[int, int]]:
    """For each box: (dark pixels inside it, pixels that differ from the unsigned page outside it)."""
    scale = 100 / 96  # CSS px → pixels at 100 dpi
    results = []
    for page, (left, top, right, bottom) in boxes:
        signed, blank = page_image(pdf, tmp_path, page), page_image(blank_pdf, tmp_path, page)
        region = (
            math.ceil(left * scale) + 2,
            math.ceil(top * scale) + 2,
            math.floor(right * scale) - 2,
            math.floor(bottom * scale) - 2,
        )
        inside = dark_pixels(signed, region)
        outside = 0
        for index, (a, b) in enumerate(zip(signed.tobytes(), blank.tobytes(), strict=True)):
            x, y = index % signed.width, index // signed.width
            if abs(a - b) > 64 and not (
                region[0] - 3 <= x <= region[2] + 3 and region[1] - 3 <= y <= region[3] + 3
            ):
                outside += 1
        results.append((inside, outside))
    return results


def test_signature_is_drawn_inside_the_signature_box(tmp_path: Path) -> None:
    case = family_case()
    boxes = signature_boxes(case, ["idou_todoke"])
    assert len(boxes) == 1
    signed = render_form(case, "idou_todoke").pdf
    blank = render_form(replace(case, signatures=()), "idou_todoke").pdf
    [(inside, outside)] = _ink_inside_and_outside(signed, blank, boxes, tmp_path)
    assert inside > 300
    assert outside == 0
    # The box without a signature is empty (only its dotted border, cut off by the margin above).
    assert dark_pixels(page_image(blank, tmp_path, 1), _box_region(boxes[0][1])) == 0


def _box_region(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    scale = 100 / 96
    left, top, right, bottom = box
    return (
        math.ceil(left * scale) + 2,
        math.ceil(top * scale) + 2,
        math.floor(right * scale) - 2,
        math.floor(bottom * scale) - 2,
    )


def test_summary_has_both_signatures(tmp_path: Path) -> None:
    case = family_case()
    boxes = signature_boxes(case, ["application_summary"])
    assert len(boxes) == 2  # 届出人 and 受付者
    signed = render_form(case, "application_summary").pdf
    only_resident = render_form(replace(case, signatures=case.signatures[:1]), "application_summary").pdf
    image, resident_only = page_image(signed, tmp_path, 1), page_image(only_resident, tmp_path, 1)
    resident_box, clerk_box = (_box_region(b) for _, b in boxes)
    assert dark_pixels(image, resident_box) > 300 and dark_pixels(image, clerk_box) > 150
    assert dark_pixels(resident_only, clerk_box) == 0


def test_signature_is_vector_paths_not_an_image(tmp_path: Path) -> None:
    rendered = render_form(family_case(), "idou_todoke")
    path = tmp_path / "signed.pdf"
    path.write_bytes(rendered.pdf)
    images = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert len(images.strip().splitlines()) == 2  # header only
    svg = signature_svg(wave(SignatureRole.RESIDENT), *SIGNATURE_BOX_MM)
    assert svg.count("<path") >= 3 and 'stroke-linecap="round"' in svg


def test_a_signature_with_zero_strokes_draws_nothing(tmp_path: Path) -> None:
    empty = Signature(SignatureRole.RESIDENT, 480, 160, ())
    assert signature_svg(empty, 62, 14) == ""
    assert signature_svg(None, 62, 14) == ""
    case = family_case()
    with_empty = render_form(replace(case, signatures=(empty,)), "idou_todoke").pdf
    without = render_form(replace(case, signatures=()), "idou_todoke").pdf
    assert page_image(with_empty, tmp_path, 1).tobytes() == page_image(without, tmp_path, 1).tobytes()


def test_signature_svg_fits_the_box_and_follows_pressure() -> None:
    svg = signature_svg(wave(SignatureRole.RESIDENT), 62, 14)
    numbers = [float(n) for d in re.findall(r' d="([^"]+)"', svg) for n in re.findall(r"-?\d+(?:\.\d+)?", d)]
    xs, ys = numbers[0::2], numbers[1::2]
    assert min(xs) > 0 and max(xs) < 62 and min(ys) > 0 and max(ys) < 14
    widths = {float(w) for w in re.findall(r'stroke-width="([\d.]+)"', svg)}
    assert len(widths) >= 4  # the pressure rises along each stroke: the line gets wider
    assert min(widths) >= 0.22 and max(widths) <= 0.75
    # A tap (one point) is a dot.
    dot = Signature(SignatureRole.RESIDENT, 100, 50, ((StrokePoint(10, 10, 0, 0.5),),))
    assert "<circle" in signature_svg(dot, 62, 14)


# --- choosing forms -------------------------------------------------------------------------------------


def test_default_set_is_the_cases_printable_forms_then_summary_and_guide() -> None:
    rendered = render_forms(family_case(), base_url=BASE)
    assert rendered.form_ids == (
        "idou_todoke",
        "card_face_change",
        "kokuho_shikaku",
        "jido_teate_nintei",
        "kosodate_iryo",
        "application_summary",
        "guide_sheet",
    )
    assert rendered.skipped == ("tenkogaku",)


def test_not_needed_procedures_are_left_out_of_the_guide(tmp_path: Path) -> None:
    procedures = tuple(
        replace(p, status=ProcedureStatus.NOT_NEEDED) if p.procedure_id == "kokuho" else p for p in PROCEDURES
    )
    rendered = render_form(family_case(procedures=procedures), "guide_sheet", base_url=BASE)
    text = compact(pdf_text(rendered.pdf, tmp_path))
    assert "国民健康保険の加入" not in text and "保険年金課" not in text


def test_unknown_form_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="印刷できない様式"):
        render_forms(family_case(), ["tenkogaku"])
    with pytest.raises(ValueError, match="印刷する様式がありません"):
        render_forms(family_case(), [])


def test_a_form_that_does_not_fit_its_sheet_fails_instead_of_splitting() -> None:
    long_address = Address("991-0021", "山形県寒河江市中央一丁目" * 200, "")
    with pytest.raises(PdfLayoutError):
        render_form(family_case(new_address=long_address), "idou_todoke")
