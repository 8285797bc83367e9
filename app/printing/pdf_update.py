"""Append a signature field to a simple PDF as one incremental update, without a PDF library.

`append_signature_field` reads just enough of the original file — the last cross-reference
section (a classic table or a cross-reference stream, with object streams, as WeasyPrint/pydyf
write them), the trailer, the catalog and the first page — and appends a revision that adds an
invisible signature field on the first page, the signature dictionary with a zero-filled
/Contents placeholder and its /ByteRange filled in, and a cross-reference section of the same
kind as the original's. The caller hashes the byte range and writes the CMS into the placeholder.

Anything outside that shape raises `UnsupportedPdfError` (encrypted files, files with earlier
updates or hybrid cross-references, a catalog that already has an /AcroForm or /Perms, stream
filters other than Flate without predictors, anything the small parser does not understand);
the caller then uses a full PDF library instead. The original bytes are never changed, except
that an end-of-line is added when the file does not end with one.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, TypeAlias

__all__ = ["SignatureUpdate", "UnsupportedPdfError", "append_signature_field"]


class UnsupportedPdfError(Exception):
    """The PDF is not one this module can update; use a full PDF library."""


@dataclass(frozen=True, slots=True)
class Name:
    raw: bytes  # without the slash, #xx escapes as written


@dataclass(frozen=True, slots=True)
class Token:
    raw: bytes  # a real number, string, boolean or null, exactly as written


class Ref(NamedTuple):
    number: int
    generation: int


PdfValue: TypeAlias = "int | Name | Token | Ref | list[PdfValue] | dict[bytes, PdfValue]"
PdfDict: TypeAlias = "dict[bytes, PdfValue]"

_WS = rb"\x00\t\n\x0c\r "
_SKIP = re.compile(rb"(?:[" + _WS + rb"]+|%[^\r\n]*)*")
_REGULAR = re.compile(rb"[^" + _WS + rb"()<>\[\]{}/%]+")
_NAME = re.compile(rb"[^" + _WS + rb"()<>\[\]{}/%]*")
_INTEGER = re.compile(rb"[+-]?[0-9]+")
_REAL = re.compile(rb"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)")
_REF_TAIL = re.compile(rb"[" + _WS + rb"]+([0-9]+)[" + _WS + rb"]+R(?![^" + _WS + rb"()<>\[\]{}/%])")
_HEX = re.compile(rb"<[0-9A-Fa-f" + _WS + rb"]*>")
_OBJ_HEADER = re.compile(rb"[" + _WS + rb"]*([0-9]+)[" + _WS + rb"]+([0-9]+)[" + _WS + rb"]+obj")
_STREAM = re.compile(rb"[" + _WS + rb"]*stream(?:\r\n|\n)")
_ENDSTREAM = re.compile(rb"(?:\r\n|\r|\n)?endstream")
_XREF_SUBSECTION = re.compile(rb"[" + _WS + rb"]*([0-9]+)[ \t]+([0-9]+)")
_XREF_ENTRY = re.compile(rb"[" + _WS + rb"]*([0-9]{10}) ([0-9]{5}) ([nf])")
_TRAILER = re.compile(rb"[" + _WS + rb"]*trailer")
_MAX_DEPTH = 32


class _Parser:
    """Reads PDF objects from `data`; every failure is an UnsupportedPdfError."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def skip(self, pos: int) -> int:
        match = _SKIP.match(self.data, pos)
        return match.end() if match else pos

    def value(self, pos: int, depth: int = 0) -> tuple[PdfValue, int]:
        if depth > _MAX_DEPTH:
            raise UnsupportedPdfError("objects nested too deeply")
        data = self.data
        pos = self.skip(pos)
        first = data[pos : pos + 1]
        if first == b"<":
            if data[pos + 1 : pos + 2] == b"<":
                return self.dictionary(pos + 2, depth + 1)
            hex_string = _HEX.match(data, pos)
            if hex_string is None:
                raise UnsupportedPdfError(f"bad hex string at {pos}")
            return Token(hex_string.group()), hex_string.end()
        if first == b"[":
            return self.array(pos + 1, depth + 1)
        if first == b"/":
            name = _NAME.match(data, pos + 1)
            assert name is not None  # the pattern matches the empty string
            return Name(name.group()), name.end()
        if first == b"(":
            return self.literal_string(pos)
        word_match = _REGULAR.match(data, pos)
        if word_match is None:
            raise UnsupportedPdfError(f"unexpected byte at {pos}")
        word, end = word_match.group(), word_match.end()
        if _INTEGER.fullmatch(word):
            if word[0] in b"+-":
                return int(word), end
            ref = _REF_TAIL.match(data, end)
            if ref is not None:
                return Ref(int(word), int(ref.group(1))), ref.end()
            return int(word), end
        if _REAL.fullmatch(word) or word in (b"true", b"false", b"null"):
            return Token(word), end
        raise UnsupportedPdfError(f"unexpected {word[:20]!r} at {pos}")

    def dictionary(self, pos: int, depth: int) -> tuple[PdfDict, int]:
        result: PdfDict = {}
        while True:
            pos = self.skip(pos)
            if self.data.startswith(b">>", pos):
                return result, pos + 2
            key, pos = self.value(pos, depth)
            if not isinstance(key, Name):
                raise UnsupportedPdfError(f"dictionary key is not a name at {pos}")
            result[key.raw], pos = self.value(pos, depth)

    def array(self, pos: int, depth: int) -> tuple[list[PdfValue], int]:
        result: list[PdfValue] = []
        while True:
            pos = self.skip(pos)
            if self.data.startswith(b"]", pos):
                return result, pos + 1
            item, pos = self.value(pos, depth)
            result.append(item)

    def literal_string(self, start: int) -> tuple[Token, int]:
        data, depth, pos = self.data, 0, start
        while pos < len(data):
            byte = data[pos]
            if byte == 0x5C:  # backslash: the next byte is escaped
                pos += 2
                continue
            if byte == 0x28:
                depth += 1
            elif byte == 0x29:
                depth -= 1
                if depth == 0:
                    return Token(data[start : pos + 1]), pos + 1
            pos += 1
        raise UnsupportedPdfError("unterminated string")

    def indirect(self, pos: int, number: int, generation: int) -> tuple[PdfValue, bytes | None]:
        """The object `number generation obj` at `pos`, and its raw stream data if it has one."""
        header = _OBJ_HEADER.match(self.data, pos)
        if header is None or (int(header.group(1)), int(header.group(2))) != (number, generation):
            raise UnsupportedPdfError(f"object {number} {generation} is not at {pos}")
        value, pos = self.value(header.end())
        stream = _STREAM.match(self.data, pos)
        if stream is None:
            return value, None
        if not isinstance(value, dict) or not isinstance(length := value.get(b"Length"), int):
            raise UnsupportedPdfError(f"stream {number} without a direct /Length")
        start = stream.end()
        if length < 0 or _ENDSTREAM.match(self.data, start + length) is None:
            raise UnsupportedPdfError(f"stream {number}: /Length does not end at endstream")
        return value, self.data[start : start + length]


def _decoded(stream: PdfDict, raw: bytes) -> bytes:
    filters = stream.get(b"Filter")
    if isinstance(filters, list) and len(filters) == 1:
        filters = filters[0]
    if b"DecodeParms" in stream or filters not in (None, Name(b"FlateDecode")):
        raise UnsupportedPdfError("stream filter other than plain FlateDecode")
    if filters is None:
        return raw
    try:
        return zlib.decompress(raw)
    except zlib.error as error:
        raise UnsupportedPdfError(f"bad Flate stream: {error}") from error


def _integers(value: PdfValue | None, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(item, int) for item in value):
        raise UnsupportedPdfError(f"{what} is not an array of integers")
    return [item for item in value if isinstance(item, int)]


class _Document:
    """The original file's last cross-reference section, its trailer, and object lookup."""

    def __init__(self, data: bytes) -> None:
        self.parser = _Parser(data)
        self.object_streams: dict[int, tuple[bytes, dict[int, int]]] = {}
        tail_start = max(0, len(data) - 1024)
        marker = data.rfind(b"startxref", tail_start)
        if marker < 0:
            raise UnsupportedPdfError("no startxref")
        startxref, _ = self.parser.value(marker + len(b"startxref"))
        if not isinstance(startxref, int) or not 0 < startxref < marker:
            raise UnsupportedPdfError("bad startxref")
        self.startxref = startxref
        # number → (1, offset, generation) or (2, object stream number, index in it)
        self.entries: dict[int, tuple[int, int, int]] = {}
        if data.startswith(b"xref", startxref):
            self.uses_xref_stream = False
            self.trailer = self._read_xref_table(startxref + 4)
        else:
            self.uses_xref_stream = True
            self.trailer = self._read_xref_stream(startxref)
        for key in (b"Prev", b"XRefStm", b"Encrypt"):
            if key in self.trailer:
                raise UnsupportedPdfError(f"trailer has /{key.decode()}")
        size = self.trailer.get(b"Size")
        if not isinstance(size, int) or any(number >= size for number in self.entries):
            raise UnsupportedPdfError("bad trailer /Size")
        self.size = size

    def _read_xref_table(self, pos: int) -> PdfDict:
        data = self.parser.data
        while (keyword := _TRAILER.match(data, pos)) is None:
            subsection = _XREF_SUBSECTION.match(data, pos)
            if subsection is None:
                raise UnsupportedPdfError("bad xref subsection")
            first, count = int(subsection.group(1)), int(subsection.group(2))
            pos = subsection.end()
            for number in range(first, first + count):
                entry = _XREF_ENTRY.match(data, pos)
                if entry is None:
                    raise UnsupportedPdfError("bad xref entry")
                pos = entry.end()
                if entry.group(3) == b"n" and number not in self.entries:
                    self.entries[number] = (1, int(entry.group(1)), int(entry.group(2)))
        trailer, _ = self.parser.value(keyword.end())
        if not isinstance(trailer, dict):
            raise UnsupportedPdfError("trailer is not a dictionary")
        return trailer

    def _read_xref_stream(self, pos: int) -> PdfDict:
        header = _OBJ_HEADER.match(self.parser.data, pos)
        if header is None:
            raise UnsupportedPdfError("startxref points at neither xref nor an object")
        stream, raw = self.parser.indirect(pos, int(header.group(1)), int(header.group(2)))
        if not isinstance(stream, dict) or raw is None or stream.get(b"Type") != Name(b"XRef"):
            raise UnsupportedPdfError("startxref points at no xref stream")
        widths = _integers(stream.get(b"W"), "/W")
        size = stream.get(b"Size")
        if len(widths) != 3 or min(widths) < 0 or not isinstance(size, int):
            raise UnsupportedPdfError("bad xref stream /W or /Size")
        index = _integers(stream.get(b"Index", [0, size]), "/Index")
        data = _decoded(stream, raw)
        row = sum(widths)
        if row == 0 or len(index) % 2:
            raise UnsupportedPdfError("bad xref stream /W or /Index")
        pos = 0
        for first, count in zip(index[::2], index[1::2], strict=True):
            if pos + count * row > len(data):
                raise UnsupportedPdfError("xref stream too short")
            for number in range(first, first + count):
                fields = []
                for width in widths:
                    fields.append(int.from_bytes(data[pos : pos + width], "big"))
                    pos += width
                kind = fields[0] if widths[0] else 1
                if kind in (1, 2) and number not in self.entries:
                    self.entries[number] = (kind, fields[1], fields[2])
        return stream

    def generation(self, ref: Ref) -> int:
        kind, _, generation = self._entry(ref)
        return generation if kind == 1 else 0

    def _entry(self, ref: Ref) -> tuple[int, int, int]:
        entry = self.entries.get(ref.number)
        if entry is None or (entry[0] == 1 and entry[2] != ref.generation):
            raise UnsupportedPdfError(f"object {ref.number} {ref.generation} not in the xref")
        if entry[0] == 2 and ref.generation != 0:
            raise UnsupportedPdfError(f"compressed object {ref.number} with generation {ref.generation}")
        return entry

    def resolve(self, value: PdfValue | None) -> PdfValue:
        if not isinstance(value, Ref):
            if value is None:
                raise UnsupportedPdfError("missing value")
            return value
        kind, where, generation = self._entry(value)
        if kind == 1:
            result, _ = self.parser.indirect(where, value.number, generation)
            return result
        data, offsets = self._object_stream(where)
        offset = offsets.get(value.number)
        if offset is None:
            raise UnsupportedPdfError(f"object {value.number} not in object stream {where}")
        result, _ = _Parser(data).value(offset)
        return result

    def dictionary(self, value: PdfValue | None, what: str) -> PdfDict:
        result = self.resolve(value)
        if not isinstance(result, dict):
            raise UnsupportedPdfError(f"{what} is not a dictionary")
        return result

    def _object_stream(self, number: int) -> tuple[bytes, dict[int, int]]:
        cached = self.object_streams.get(number)
        if cached is not None:
            return cached
        kind, offset, generation = self._entry(Ref(number, 0))
        if kind != 1:
            raise UnsupportedPdfError(f"object stream {number} is itself compressed")
        stream, raw = self.parser.indirect(offset, number, generation)
        if not isinstance(stream, dict) or raw is None or stream.get(b"Type") != Name(b"ObjStm"):
            raise UnsupportedPdfError(f"object {number} is not an object stream")
        count, first = stream.get(b"N"), stream.get(b"First")
        if not isinstance(count, int) or not isinstance(first, int):
            raise UnsupportedPdfError(f"object stream {number} without /N or /First")
        data = _decoded(stream, raw)
        parser, pos, offsets = _Parser(data), 0, dict[int, int]()
        for _ in range(count):
            object_number, pos = parser.value(pos)
            object_offset, pos = parser.value(pos)
            if not isinstance(object_number, int) or not isinstance(object_offset, int):
                raise UnsupportedPdfError(f"bad object stream {number} header")
            offsets.setdefault(object_number, first + object_offset)
        self.object_streams[number] = (data, offsets)
        return data, offsets


def serialize(value: PdfValue) -> bytes:
    if isinstance(value, dict):
        return b"<<" + b"".join(b"/" + key + b" " + serialize(item) for key, item in value.items()) + b">>"
    if isinstance(value, list):
        return b"[" + b" ".join(serialize(item) for item in value) + b"]"
    if isinstance(value, Name):
        return b"/" + value.raw
    if isinstance(value, Token):
        return value.raw
    if isinstance(value, Ref):
        return b"%d %d R" % value
    return b"%d" % value


def text_string(text: str) -> bytes:
    """A PDF text string: a literal for printable ASCII, else UTF-16BE with a byte order mark."""
    if text.isascii() and text.isprintable():
        escaped = text.encode("ascii").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        return b"(" + escaped + b")"
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


@dataclass(frozen=True, slots=True)
class SignatureUpdate:
    """The signed file with a zero-filled /Contents at `contents_start:contents_end` (the hex
    string with its angle brackets: the gap in /ByteRange)."""

    data: bytes
    contents_start: int
    contents_end: int

    def signed_parts(self) -> tuple[bytes, bytes]:
        return self.data[: self.contents_start], self.data[self.contents_end :]

    def with_contents(self, signature: bytes) -> bytes:
        hex_digits = signature.hex().encode("ascii")
        capacity = self.contents_end - self.contents_start - 2
        if len(hex_digits) > capacity:
            raise ValueError(f"signature of {len(signature)} bytes does not fit the placeholder")
        start = self.contents_start + 1
        return self.data[:start] + hex_digits + self.data[start + len(hex_digits) :]


_BYTE_RANGE_WIDTH = 44  # "[0 a b c]" with three offsets of up to 13 digits


def append_signature_field(
    pdf: bytes,
    *,
    field_name: str,
    contents_size: int,
    signing_time: datetime,
    reason: str = "",
    location: str = "",
) -> SignatureUpdate:
    """`pdf` with an invisible signature field on its first page and an ETSI.CAdES.detached
    signature dictionary whose /Contents has room for `contents_size` bytes.

    Raises UnsupportedPdfError when `pdf` is not a file this module can update."""
    try:
        return _append_signature_field(pdf, field_name, contents_size, signing_time, reason, location)
    except (ValueError, IndexError, OverflowError, RecursionError) as error:
        raise UnsupportedPdfError(f"unreadable PDF: {error}") from error


def _append_signature_field(
    pdf: bytes, field_name: str, contents_size: int, signing_time: datetime, reason: str, location: str
) -> SignatureUpdate:
    document = _Document(pdf)
    trailer = document.trailer
    root_ref = trailer.get(b"Root")
    if not isinstance(root_ref, Ref):
        raise UnsupportedPdfError("trailer /Root is not a reference")
    catalog = dict(document.dictionary(root_ref, "catalog"))
    if catalog.get(b"Type") != Name(b"Catalog"):
        raise UnsupportedPdfError("/Root is not a /Catalog")
    for key in (b"AcroForm", b"Perms"):
        if key in catalog:
            raise UnsupportedPdfError(f"catalog has /{key.decode()}")
    page_ref, page = _first_page(document, catalog.get(b"Pages"))
    annotations = page.get(b"Annots", [])
    if not isinstance(annotations, list):
        raise UnsupportedPdfError("page /Annots is not a direct array")

    size = document.size
    signature_ref, field_ref, form_ref = Ref(size, 0), Ref(size + 1, 0), Ref(size + 2, 0)
    catalog[b"AcroForm"] = form_ref
    page = dict(page)
    page[b"Annots"] = [*annotations, field_ref]

    output = bytearray(pdf)
    if not pdf.endswith((b"\n", b"\r")):
        output += b"\n"
    offsets: dict[int, tuple[int, int]] = {}  # number → (offset, generation)

    def add(ref: Ref, body: bytes) -> int:
        offsets[ref.number] = (len(output), ref.generation)
        output.extend(b"%d %d obj\n" % ref)
        start = len(output)
        output.extend(body)
        output.extend(b"\nendobj\n")
        return start

    add(Ref(root_ref.number, document.generation(root_ref)), serialize(catalog))
    add(Ref(page_ref.number, document.generation(page_ref)), serialize(page))
    byte_range_placeholder = b"[0 0 0 0]".ljust(_BYTE_RANGE_WIDTH)
    signature_head = (
        b"<</Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached"
        + b" /M "
        + text_string(signing_time.strftime("D:%Y%m%d%H%M%SZ"))
        + (b" /Reason " + text_string(reason) if reason else b"")
        + (b" /Location " + text_string(location) if location else b"")
        + b" /ByteRange "
    )
    signature_start = add(
        signature_ref,
        signature_head + byte_range_placeholder + b" /Contents <" + b"0" * (2 * contents_size) + b">>>",
    )
    byte_range_at = signature_start + len(signature_head)
    contents_start = byte_range_at + len(byte_range_placeholder) + len(b" /Contents ")
    contents_end = contents_start + 2 * contents_size + 2
    field: PdfDict = {
        b"FT": Name(b"Sig"),
        b"T": Token(text_string(field_name)),
        b"Type": Name(b"Annot"),
        b"Subtype": Name(b"Widget"),
        b"F": 132,
        b"Rect": [0, 0, 0, 0],
        b"P": page_ref,
        b"V": signature_ref,
    }
    add(field_ref, serialize(field))
    add(form_ref, serialize({b"Fields": [field_ref], b"SigFlags": 3}))

    new_trailer: PdfDict = {b"Root": root_ref}
    if b"Info" in trailer:
        new_trailer[b"Info"] = trailer[b"Info"]
    file_id = trailer.get(b"ID")
    if file_id is None:
        identifier = Token(b"<" + os.urandom(16).hex().encode("ascii") + b">")
        file_id = [identifier, identifier]
    new_trailer[b"ID"] = file_id
    new_trailer[b"Prev"] = document.startxref
    if document.uses_xref_stream:
        xref_ref = Ref(size + 3, 0)
        offsets[xref_ref.number] = (len(output), 0)
        xref_at = len(output)
        width = max(1, (xref_at.bit_length() + 7) // 8)
        numbers = sorted(offsets)
        rows = b"".join(
            b"\x01" + offsets[number][0].to_bytes(width, "big") + offsets[number][1].to_bytes(2, "big")
            for number in numbers
        )
        xref_stream: PdfDict = {
            b"Type": Name(b"XRef"),
            b"Size": size + 4,
            b"W": [1, width, 2],
            b"Index": [item for first, count in _runs(numbers) for item in (first, count)],
            **new_trailer,
            b"Length": len(rows),
        }
        add(xref_ref, serialize(xref_stream) + b"\nstream\n" + rows + b"\nendstream")
    else:
        xref_at = len(output)
        output.extend(b"xref\n")
        numbers = sorted(offsets)
        for first, count in _runs(numbers):
            output.extend(b"%d %d\n" % (first, count))
            for number in range(first, first + count):
                output.extend(b"%010d %05d n\r\n" % offsets[number])
        output.extend(b"trailer\n" + serialize({b"Size": size + 3, **new_trailer}) + b"\n")
    output.extend(b"startxref\n%d\n%%%%EOF\n" % xref_at)

    byte_range = b"[0 %d %d %d]" % (contents_start, contents_end, len(output) - contents_end)
    if len(byte_range) > _BYTE_RANGE_WIDTH:
        raise UnsupportedPdfError("file too large for the /ByteRange placeholder")
    output[byte_range_at : byte_range_at + _BYTE_RANGE_WIDTH] = byte_range.ljust(_BYTE_RANGE_WIDTH)
    return SignatureUpdate(bytes(output), contents_start, contents_end)


def _first_page(document: _Document, pages: PdfValue | None) -> tuple[Ref, PdfDict]:
    node_ref = pages
    for _ in range(_MAX_DEPTH):
        if not isinstance(node_ref, Ref):
            raise UnsupportedPdfError("page tree node is not a reference")
        node = document.dictionary(node_ref, "page tree node")
        if node.get(b"Type") == Name(b"Page"):
            return node_ref, node
        kids = node.get(b"Kids")
        if node.get(b"Type") != Name(b"Pages") or not isinstance(kids, list) or not kids:
            raise UnsupportedPdfError("bad page tree")
        node_ref = kids[0]
    raise UnsupportedPdfError("page tree too deep")


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted object numbers as (first, count) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][0] + runs[-1][1] == number:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((number, 1))
    return runs
