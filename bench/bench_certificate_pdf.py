"""Certificate PDF rendering: a typical 住民票の写し (3-person household, 世帯連記式, one copy).

    uv run python bench/bench_certificate_pdf.py --count 60 --wk-count 15
    uv run python bench/bench_certificate_pdf.py --count 100 --wk-count 20 --keep bench/out/certificates

Reports median / p95 / min of wall-clock time, and the median of CPU time (this process's, or for
wkhtmltopdf its child processes'), in one warm process (fonts, stylesheets, templates and the
background pattern already loaded — the first, cold render is reported apart). On a shared or
busy machine wall-clock times swing with the load (printed first); CPU times much less.

A certificate is its frame — laid out by WeasyPrint once for every certificate of the same
structure — with the values set on it (app/printing/overlay.py):

- ``render_certificate``: the figure to compare with the 30 ms target: numbering, hash, filling the
  template, looking the frame up, setting the values, QR codes and font subsets, writing the PDF.
  The typical household has 𠮷 (U+20BB7) in every name, so IPAmj明朝 is embedded; its subset is
  reused from the previous render (the same glyphs), as for repeated rare characters in practice;
- ``… new glyphs each time``: every render has a rare character and kanji not printed before, so
  no font subset can be reused (the cost of the first certificate with a new rare character);
- ``… no rare character``: 吉田 instead of 𠮷田: IPAmj明朝 is not embedded at all;
- ``… known rare chars, new mixes``: two of 8 rare characters printed before, in new pairs (each
  IPAmj明朝 glyph is a font of its own, subset once per process);
- ``… new frame each time``: the frame cache emptied before every render: WeasyPrint lays the
  frame out (the first certificate of a structure: household size, options, a wrapped address);
- ``… mixed households``: ``--mix`` renders of random structures (1–4 persons, 世帯主・続柄 and
  本籍 shown or not, 世帯連記式 or 個人票, one address in five long enough to wrap) through the
  usual cache, with how many frames were laid out;
- ``flowing (WeasyPrint, whole page)``: the same certificate laid out whole by WeasyPrint, as
  before frames (the HTML wkhtmltopdf gets too);
- ``sign``: a PAdES signature with the demo key, for reference;
- ``wkhtmltopdf``: the same certificate's HTML and CSS through wkhtmltopdf (pdfkit, one process a
  PDF, the way pdfkit works), if /usr/bin/wkhtmltopdf is installed (Debian package
  ``wkhtmltopdf``), and the speed ratio. wkhtmltopdf's old WebKit lays the page out differently;
  only speed is compared.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import measure, summary  # noqa: E402

from app.domain.certificates import CertificateType, JuminhyoLayout, JuminhyoOptions  # noqa: E402
from app.domain.registry import Sex  # noqa: E402
from app.printing.certificates import (  # noqa: E402
    FRAMES,
    CertificateData,
    HouseholdRecord,
    MunicipalityInfo,
    PersonRecord,
    prepare_certificate,
    render_certificate,
    render_certificate_flowing,
)
from app.printing.pdf import FONT_BODY, FONT_NAMES, font_charset  # noqa: E402
from app.printing.seal import make_demo_seal  # noqa: E402
from app.printing.signing import DemoSigningKey, sign_pdf  # noqa: E402

ADDRESS = "架空県青葉台町中央一丁目2番3号"
YOSHI = "\U00020bb7"  # 𠮷


def typical_juminhyo(serial: int = 1) -> CertificateData:
    def person(index: int, name: str, kana: str, relationship: str, birth: date, sex: Sex) -> PersonRecord:
        return PersonRecord(
            name=name,
            birth_date=birth,
            sex=sex,
            resident_id=index,
            name_kana=kana,
            relationship=relationship,
            address=ADDRESS,
            became_resident_on=date(2001, 4, 1),
            address_set_on=date(2010, 5, 6),
            previous_address="東京都千代田区霞が関一丁目1番1号",
        )

    persons = (
        person(1, "\U00020bb7田　太郎", "ヨシダ　タロウ", "世帯主", date(1970, 5, 3), Sex.MALE),
        person(2, "\U00020bb7田　花子", "ヨシダ　ハナコ", "妻", date(1972, 8, 9), Sex.FEMALE),
        person(3, "\U00020bb7田　一郎", "ヨシダ　イチロウ", "子", date(2005, 1, 20), Sex.MALE),
    )
    return CertificateData(
        certificate_type=CertificateType.JUMINHYO,
        municipality=MunicipalityInfo(
            code="993417",
            name="青葉台町",
            mayor_name="緑川　晴彦",
            prefecture="架空県",
            seal_png=SEAL_PNG,
        ),
        issued_at=datetime(2026, 4, 21, 10, 15, tzinfo=timezone(timedelta(hours=9))),
        terminal_code="K01",
        printer_code="P01",
        serial_start=serial,
        verify_base_url="https://aobadai.example.jp",
        persons=persons,
        household=HouseholdRecord("0001", "\U00020bb7田　太郎", ADDRESS, "青葉台ハイツ101号"),
        juminhyo_options=JuminhyoOptions(show_head_relationship=True),
        reception_number="128",
    )


SEAL_PNG = make_demo_seal()


@functools.cache
def _new_glyph_pools() -> tuple[list[str], list[str]]:
    """Rare characters (IPAmj only) and common kanji (IPAex), in code point order."""
    body, names = font_charset(FONT_BODY), font_charset(FONT_NAMES)
    rare = [chr(c) for c in sorted(names - body) if 0x20000 <= c <= 0x2A6DF]
    kanji = [chr(c) for c in sorted(body) if 0x4E00 <= c <= 0x9FFF]
    return rare, kanji


def with_new_glyphs(data: CertificateData, index: int) -> CertificateData:
    """`data` with names that no earlier render printed: a rare surname character and given names
    of kanji taken in order, so neither font subset can come from the cache."""
    rare, kanji = _new_glyph_pools()
    surname = rare[index % len(rare)] + "田"
    persons = tuple(
        replace(
            person,
            name=f"{surname}　{kanji[(index * 6 + 2 * n) % len(kanji)]}{kanji[(index * 6 + 2 * n + 1) % len(kanji)]}",
        )
        for n, person in enumerate(data.persons)
    )
    household = replace(data.household, head_name=persons[0].name) if data.household else None
    return replace(data, persons=persons, household=household)


def with_rare_mix(data: CertificateData, first: int, second: int) -> CertificateData:
    """Two of a town's 8 recurring rare characters, in a combination not printed before."""
    rare, _ = _new_glyph_pools()
    persons = list(data.persons)
    persons[0] = replace(persons[0], name=f"{rare[first]}田　太郎")
    persons[1] = replace(persons[1], name=f"{rare[second]}川　花子")
    household = replace(data.household, head_name=persons[0].name) if data.household else None
    return replace(data, persons=tuple(persons), household=household)


def without_rare_characters(data: CertificateData) -> CertificateData:
    persons = tuple(replace(person, name=person.name.replace(YOSHI, "吉")) for person in data.persons)
    household = (
        replace(data.household, head_name=data.household.head_name.replace(YOSHI, "吉"))
        if data.household
        else None
    )
    return replace(data, persons=persons, household=household)


def mixed_certificate(rng: random.Random, index: int) -> CertificateData:
    """A 住民票 of a random structure (see the module docstring)."""
    data = typical_juminhyo(1000 + index)
    extra = (
        replace(
            data.persons[0],
            name="\u5409\u7530\u3000\u6b21\u90ce",
            name_kana="ヨシダ　ジロウ",
            relationship="子",
        ),
    )
    persons = (data.persons + extra)[: rng.randint(1, 4)]
    if rng.random() < 0.2:
        persons = (
            replace(
                persons[0], previous_address="東京都千代田区霞が関一丁目1番1号　霞が関コモンゲート西館二十階"
            ),
        ) + persons[1:]
    options = JuminhyoOptions(
        show_head_relationship=rng.random() < 0.5,
        show_honseki=rng.random() < 0.3,
        layout=JuminhyoLayout.INDIVIDUAL if rng.random() < 0.2 else JuminhyoLayout.HOUSEHOLD,
    )
    return replace(data, persons=persons, juminhyo_options=options)


def inline_html(html: str, stylesheets: tuple[Path | str, ...]) -> str:
    css = "\n".join(s.read_text(encoding="utf-8") if isinstance(s, Path) else s for s in stylesheets)
    return html.replace("</head>", f"<style>\n{css}\n</style>\n</head>", 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=40, help="WeasyPrint renders to time (default 40)")
    parser.add_argument("--wk-count", type=int, default=10, help="wkhtmltopdf renders to time (default 10)")
    parser.add_argument("--mix", type=int, default=200, help="renders of mixed households (default 200)")
    parser.add_argument("--keep", type=Path, help="write the PDFs (WeasyPrint, signed, wkhtmltopdf) here")
    args = parser.parse_args()

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"Certificate PDF: 住民票の写し, 3 persons, 世帯連記式, 1 copy; {os.cpu_count()} CPUs, load {load}")
    start = time.perf_counter()
    first = render_certificate(typical_juminhyo())
    cold = (time.perf_counter() - start) * 1000
    print(
        f"  cold first render      {cold:7.1f} ms   (imports done; fonts, CSS, background, templates loaded)"
    )
    for index in range(5):  # warm up
        render_certificate(typical_juminhyo(index + 2))
        render_certificate(with_new_glyphs(typical_juminhyo(index + 2), 10_000 + index))

    prepared = prepare_certificate(typical_juminhyo())
    total_times = measure(args.count, lambda i: render_certificate(typical_juminhyo(i + 100)))
    new_glyph_times = measure(
        args.count, lambda i: render_certificate(with_new_glyphs(typical_juminhyo(i + 200), i))
    )
    plain_times = measure(
        args.count, lambda i: render_certificate(without_rare_characters(typical_juminhyo(i + 300)))
    )
    for glyph_index in range(8):  # warm: each of 8 rare characters printed once
        render_certificate(with_rare_mix(typical_juminhyo(600 + glyph_index), glyph_index, glyph_index))
    recurring_times = measure(
        args.count,
        lambda i: render_certificate(with_rare_mix(typical_juminhyo(i + 700), i % 8, (i * 3 + 1) % 8)),
    )
    new_frame_times = measure(
        max(5, args.count // 3), lambda i: (FRAMES.clear(), render_certificate(typical_juminhyo(i + 400)))
    )
    FRAMES.clear()
    builds = FRAMES.builds
    rng = random.Random(7)
    mixed = [mixed_certificate(rng, i) for i in range(args.mix)]
    mixed_times = measure(len(mixed), lambda i: render_certificate(mixed[i]))
    mixed_builds = FRAMES.builds - builds
    flowing_times = measure(args.count, lambda i: render_certificate_flowing(typical_juminhyo(i + 500)))
    with tempfile.TemporaryDirectory() as keys:
        signer = DemoSigningKey.load_or_create(Path(keys)).signer_config()
        sign_pdf(first.pdf, signer)
        sign_times = measure(max(5, args.count // 2), lambda i: sign_pdf(first.pdf, signer))
        signed = sign_pdf(first.pdf, signer)

    print(summary("render_certificate", total_times))
    print(summary("… new glyphs each time", new_glyph_times))
    print(summary("… no rare character", plain_times))
    print(summary("… known rare chars, new mixes", recurring_times))
    print(summary("… new frame each time", new_frame_times))
    print(summary(f"… mixed households ({mixed_builds} frames)", mixed_times))
    print(summary("flowing (WeasyPrint, whole page)", flowing_times))
    print(summary("sign (PAdES)", sign_times))
    weasy_median = statistics.median(total_times.wall)
    target = "meets" if weasy_median <= 30 else "misses"
    print(
        f"  → render_certificate median {weasy_median:.1f} ms (CPU {statistics.median(total_times.cpu):.1f} ms) "
        f"{target} the 30 ms target; mixed households median {statistics.median(mixed_times.wall):.1f} ms "
        f"with {mixed_builds} of {len(mixed)} frames laid out; PDF {len(first.pdf)} bytes"
    )

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        (args.keep / "juminhyo-weasyprint.pdf").write_bytes(first.pdf)
        (args.keep / "juminhyo-weasyprint-signed.pdf").write_bytes(signed)

    if args.wk_count <= 0:
        return  # --wk-count 0: no wkhtmltopdf comparison
    wkhtmltopdf = shutil.which("wkhtmltopdf")
    if wkhtmltopdf is None:
        print("  wkhtmltopdf: not installed (apt-get install wkhtmltopdf); no comparison")
        return
    import pdfkit  # type: ignore[import-untyped]

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no X server needed
    html = inline_html(prepared.html, prepared.stylesheets)
    config = pdfkit.configuration(wkhtmltopdf=wkhtmltopdf)
    options = {"page-size": "A4", "encoding": "UTF-8", "quiet": "", "disable-local-file-access": ""}
    wk_pdf = pdfkit.from_string(html, False, configuration=config, options=options)  # warm the page cache
    wk_times = measure(
        args.wk_count,
        lambda i: pdfkit.from_string(html, False, configuration=config, options=options),
        children=True,
    )
    # wkhtmltopdf waits 200 ms for JavaScript by default (--javascript-delay): most of its wall time.
    no_delay = {**options, "javascript-delay": "0"}
    wk_fast_times = measure(
        args.wk_count,
        lambda i: pdfkit.from_string(html, False, configuration=config, options=no_delay),
        children=True,
    )
    print(summary("wkhtmltopdf (pdfkit)", wk_times))
    print(summary("wkhtmltopdf --javascript-delay 0", wk_fast_times))
    for label, times in (("default", wk_times), ("--javascript-delay 0", wk_fast_times)):
        for kind in ("wall", "cpu"):
            wk = statistics.median(getattr(times, kind))
            ratio = wk / statistics.median(getattr(flowing_times, kind))
            ratio_total = wk / statistics.median(getattr(total_times, kind))
            verdict = "meets" if ratio_total >= 10 else "misses"
            print(
                f"  → wkhtmltopdf ({label}) / Madoguchi, {'CPU' if kind == 'cpu' else 'wall-clock'}: "
                f"{ratio_total:.1f}× (render_certificate; {verdict} the 10× target), {ratio:.1f}× (flowing)"
            )
    if args.keep:
        (args.keep / "juminhyo-wkhtmltopdf.pdf").write_bytes(wk_pdf)
        print(f"  PDFs written to {args.keep}")


if __name__ == "__main__":
    main()
