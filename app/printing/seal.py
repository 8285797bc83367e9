"""公印 (the mayor's official seal) images: a demo seal, and turning any seal image black for print.

The standard (住民記録システム標準仕様書 5.6) prints the 電子公印 in black, at most 25 mm square.
`make_demo_seal` draws a square 角印 in vermilion, as a real seal impression looks;
`blacken_seal` turns any seal image into black ink on a transparent background, which is what
the certificates print, so the name under it stays readable.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import shutil
import subprocess
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps

from app.models.org import Municipality
from app.storage import LocalObjectStore

__all__ = [
    "SEAL_MAX_MM",
    "blacken_seal",
    "demo_seal_key",
    "demo_seal_text",
    "font_file",
    "make_demo_seal",
    "store_demo_seal",
]

SEAL_MAX_MM = 25.0
VERMILION = (0xC8, 0x2A, 0x1E)

# Debian's packages (fonts-ipaexfont, fonts-ipamj-mincho); fc-match finds them elsewhere.
_KNOWN_FONT_FILES: dict[str, tuple[str, ...]] = {
    "IPAexMincho": ("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf",),
    "IPAexGothic": ("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",),
    "IPAmjMincho": ("/usr/share/fonts/truetype/ipamj/ipamjm.ttf",),
}


@functools.cache
def font_file(family: str) -> Path:
    """The font file of an installed family; FileNotFoundError names the Debian package to install."""
    for candidate in _KNOWN_FONT_FILES.get(family, ()):
        if Path(candidate).is_file():
            return Path(candidate)
    fc_match = shutil.which("fc-match")
    if fc_match:
        result = subprocess.run(
            [fc_match, "--format=%{family}\n%{file}", family],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        lines = result.stdout.splitlines()
        if result.returncode == 0 and len(lines) == 2 and family in lines[0].split(","):
            return Path(lines[1])
    raise FileNotFoundError(
        f"font {family!r} is not installed (apt-get install fonts-ipaexfont fonts-ipamj-mincho)"
    )


def demo_seal_text(municipality_name: str, mayor_title: str) -> str:
    """「青葉台町長之印」 from 青葉台町 + 町長 (the 町 is not repeated)."""
    if mayor_title and municipality_name.endswith(mayor_title[0]):
        office = municipality_name + mayor_title[1:]
    else:
        office = municipality_name + mayor_title
    return f"{office}之印"


def _columns(text: str) -> list[str]:
    """Split the seal text into columns, read right to left; earlier columns take the extra characters."""
    count = max(1, math.ceil(math.sqrt(len(text))))
    base, extra = divmod(len(text), count)
    columns: list[str] = []
    start = 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        columns.append(text[start : start + size])
        start += size
    return [column for column in columns if column]


def make_demo_seal(
    text: str = "青葉台町長之印", size_px: int = 600, color: tuple[int, int, int] = VERMILION
) -> bytes:
    """A square 角印 as a PNG with a transparent background, the text in columns right to left.

    Each character is stretched to fill its cell, as seal engravers do. Not a real seal: demo only.
    """
    if not text:
        raise ValueError("seal text is empty")
    scale = 2  # draw large, then downsample for smooth edges
    size = size_px * scale
    ink = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(ink)
    border = round(size * 0.055)
    draw.rectangle((0, 0, size - 1, size - 1), fill=255)
    draw.rectangle((border, border, size - 1 - border, size - 1 - border), fill=0)
    margin = border + round(size * 0.035)
    inner = size - 2 * margin

    font = ImageFont.truetype(str(font_file("IPAexMincho")), size=round(size * 0.5))
    columns = _columns(text)
    column_width = inner / len(columns)
    gap = round(size * 0.012)
    for column_index, column in enumerate(columns):
        right = size - margin - column_index * column_width
        cell_height = inner / len(column)
        for row, character in enumerate(column):
            glyph = _glyph(font, character, stroke=round(size * 0.012))
            cell_w = max(1, round(column_width) - 2 * gap)
            cell_h = max(1, round(cell_height) - 2 * gap)
            stretched = glyph.resize((cell_w, cell_h), Image.Resampling.LANCZOS)
            ink.paste(
                255, (round(right - column_width + gap), round(margin + row * cell_height + gap)), stretched
            )

    ink = ink.resize((size_px, size_px), Image.Resampling.LANCZOS)
    seal = Image.new("RGBA", (size_px, size_px), (*color, 0))
    seal.putalpha(ink)
    return _png(seal)


def _glyph(font: ImageFont.FreeTypeFont, character: str, stroke: int) -> Image.Image:
    left, top, right, bottom = font.getbbox(character, stroke_width=stroke)
    glyph = Image.new("L", (math.ceil(right - left), math.ceil(bottom - top)), 0)
    ImageDraw.Draw(glyph).text(
        (-left, -top), character, font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    box = glyph.getbbox()
    return glyph.crop(box) if box else glyph


def blacken_seal(png: bytes, size_px: int = 300) -> bytes:
    """The seal as black ink on transparency ("LA" PNG), at most `size_px` square.

    Ink is how far each pixel's weakest colour channel is from white (scaled so the seal's own
    colour is full strength), times its opacity: a red or black seal on a white or transparent
    background both come out black. 300 px over 25 mm is ~300 dpi.
    """
    return _blacken_cached(hashlib.sha256(png).hexdigest(), png, size_px)


@functools.lru_cache(maxsize=64)
def _blacken_cached(_digest: str, png: bytes, size_px: int) -> bytes:
    with Image.open(io.BytesIO(png)) as source:
        rgba = source.convert("RGBA")
    red, green, blue, alpha = rgba.split()
    # The weakest channel: 0 for black and for saturated vermilion alike, 255 for white.
    ink = ImageOps.invert(ImageChops.darker(ImageChops.darker(red, green), blue))
    opaque = alpha.point(lambda value: 255 if value >= 128 else 0)
    extrema = ImageChops.multiply(ink, opaque).getextrema()
    strongest = int(extrema[1]) if isinstance(extrema[1], int | float) else 255
    if 0 < strongest < 255:  # the seal's own colour at full strength is solid black
        ink = ink.point(lambda value: min(255, round(value * 255 / strongest)))
    amount = ImageChops.multiply(ink, alpha)
    amount.thumbnail((size_px, size_px), Image.Resampling.LANCZOS)  # resize ink, not colours
    black = Image.new("LA", amount.size, (0, 0))
    black.putalpha(amount)
    return _png(black)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def demo_seal_key(municipality_code: str) -> str:
    return f"seals/municipality-{municipality_code}.png"


def store_demo_seal(store: LocalObjectStore, municipality: Municipality) -> str:
    """Draw the demo seal for `municipality`, store it, and return its key for `seal_image_key`.

    The caller sets `municipality.seal_image_key` to the returned key and commits.
    """
    key = demo_seal_key(municipality.code)
    store.put(key, make_demo_seal(demo_seal_text(municipality.name, municipality.mayor_title)))
    return key
