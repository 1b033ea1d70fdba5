"""CSV import and export of a tenant's contacts, through the same services as any app edit.

A file is one row per line: the six contact fields are single-line values, so a quoted cell that runs
past its line is an unterminated quote, reported at that line, and never swallows the rows after it.
Files are read a chunk at a time, never whole.

A cell a spreadsheet would evaluate as a formula (one starting with ``= + - @``, tab, carriage return or
NUL, after any leading quotes) gets one more leading ``'`` on export, and the import drops exactly that
quote again, so an export imports back unchanged. The same goes for such a start right after a ``,``,
``;`` or tab inside a value, where a spreadsheet that splits on that separator would start a new cell.
"""

import codecs
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from syncapp.engine import FIELDS, normalize_email
from syncapp.exceptions import ValidationError
from syncapp.models import Tenant
from syncapp.selectors.contacts import contact_get_live_by_email, contact_list_live
from syncapp.services.contacts import contact_create, contact_update

HEADER = list(FIELDS)
CHUNK_SIZE = 64 * 1024
# Far above the longest valid row (every field at its maximum length, every character quoted).
MAX_LINE_LENGTH = 10_000

# OWASP's CSV injection list, and NUL from ASVS 1.2.10; a cell may start at the value's start or after
# a separator some spreadsheets split on.
_CELL_START = r"(?:\A|(?<=[,;\t]))"
_FORMULA_AHEAD = r"(?='*[=+\-@\t\r\0])"
_FORMULA_START = re.compile(_CELL_START + _FORMULA_AHEAD)
_ESCAPED_FORMULA_START = re.compile(_CELL_START + "'" + _FORMULA_AHEAD)
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_LINE_PIECE = re.compile(r"[^\r\n]+(?:\r\n|\r|\n)?|\r\n|\r|\n")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # (line number, reason) for every row left out.
    errors: list[tuple[int, str]] = field(default_factory=list)


def contacts_csv_check(*, stream: IO[bytes]) -> int:
    """Read all of ``stream`` and return how many rows it has below the header (blank ones included).

    Raises ValidationError if the file is empty, is not UTF-8 or has the wrong header, so a caller that
    checks first imports nothing from such a file.
    """
    lines = _lines(stream)
    _header(next(lines, None))
    return sum(1 for _ in lines)


def contacts_import_csv(
    *, tenant: Tenant, stream: IO[bytes], progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Create or update (matched by email) one contact per row; bad rows are reported, good ones kept.

    Rows are imported as they are read: run ``contacts_csv_check`` on the file first (it also gives
    the number of rows), so that a bad byte further on stops the import before the first row.
    Each row is its own transaction through the contact services, so every change reaches the outbox.
    ``progress``, when given, is called with 1 after each row below the header, blank and bad ones
    included.
    """
    report = ImportReport()
    lines = _lines(stream)
    header = _header(next(lines, None))
    for number, line in enumerate(lines, start=2):
        try:
            _import_line(tenant=tenant, header=header, line=line, report=report)
        except ValidationError as exc:
            report.errors.append((number, str(exc)))
        if progress is not None:
            progress(1)
    return report


def contacts_export_csv(*, tenant: Tenant, stream: IO[str]) -> int:
    """Write the tenant's live contacts with the import header; return how many rows were written."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for contact in contact_list_live(tenant=tenant).iterator():
        writer.writerow([_export_cell(getattr(contact, name)) for name in HEADER])
        count += 1
    return count


def _export_cell(value: str) -> str:
    # A line break would start a new row for the import: the fields are single-line values.
    return _FORMULA_START.sub("'", _LINE_BREAKS.sub(" ", value))


def _import_cell(cell: str) -> str:
    return _ESCAPED_FORMULA_START.sub("", cell.strip())


def _lines(stream: IO[bytes]) -> Iterator[str]:
    """Yield the lines of the UTF-8 ``stream`` without their line ends, decoding a chunk at a time.

    A line longer than MAX_LINE_LENGTH is cut one character past it. Raises ValidationError at the
    first byte that is not UTF-8.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, lines_done, bytes_read, first, held_carriage_return = "", 0, 0, True, False
    while True:
        chunk = stream.read(CHUNK_SIZE)
        held = len(decoder.getstate()[0])
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            before = ("\r" if held_carriage_return else "") + exc.object[: exc.start].decode()
            number = lines_done + 1 + len(_LINE_BREAKS.findall(before))
            position = bytes_read - held + exc.start
            raise ValidationError(f"line {number}: not UTF-8 text (byte {position}: {exc.reason})") from None
        bytes_read += len(chunk)
        if first and text:
            text, first = text.removeprefix("\ufeff"), False
        if held_carriage_return:
            text, held_carriage_return = "\r" + text, False
        # A chunk ending in \r may be cut inside a \r\n: hold the \r back for the next one.
        if chunk and text.endswith("\r"):
            text, held_carriage_return = text[:-1], True
        for match in _LINE_PIECE.finditer(text):
            piece = match.group()
            content = piece.rstrip("\r\n")
            line += content[: MAX_LINE_LENGTH + 1 - len(line)]
            if len(content) < len(piece):
                yield line
                line, lines_done = "", lines_done + 1
        if not chunk:
            if line:
                yield line
            return


def _header(line: str | None) -> list[str]:
    if line is None:
        raise ValidationError("The file is empty; expected the header " + ",".join(HEADER))
    try:
        header = [name.strip().lower() for name in _parse(line)]
    except ValidationError as exc:
        raise ValidationError(f"line 1: {exc}") from None
    if sorted(header) != sorted(HEADER):
        raise ValidationError(f"line 1: the header must be {','.join(HEADER)} (got {','.join(header)})")
    return header


def _parse(line: str) -> list[str]:
    if len(line) > MAX_LINE_LENGTH:
        raise ValidationError(f"the line is longer than {MAX_LINE_LENGTH} characters")
    try:
        # The line end given back lets an unterminated quoted cell show: it is the only way one gets in.
        cells = next(csv.reader([line + "\n"]))
    except csv.Error as exc:
        raise ValidationError(f"not valid CSV ({exc})") from None
    if any("\n" in cell for cell in cells):
        raise ValidationError("unterminated quote")
    return cells


def _import_line(*, tenant: Tenant, header: list[str], line: str, report: ImportReport) -> None:
    row = _parse(line)
    if not any(cell.strip() for cell in row):
        return
    if len(row) != len(header):
        raise ValidationError(f"expected {len(header)} columns, found {len(row)}")
    _import_row(
        tenant=tenant, values={name: _import_cell(cell) for name, cell in zip(header, row, strict=True)}, report=report
    )


def _import_row(*, tenant: Tenant, values: dict[str, str], report: ImportReport) -> None:
    if not normalize_email(values["email"]):
        raise ValidationError("email is required")
    existing = contact_get_live_by_email(tenant=tenant, email=values["email"])
    if existing is None:
        contact_create(tenant=tenant, values=values)
        report.created += 1
        return
    before = existing.to_record()
    # A blank cell leaves the stored value alone: an import never erases data by omission.
    contact_update(contact=existing, values={name: value for name, value in values.items() if value.strip()})
    if existing.to_record() == before:
        report.unchanged += 1
    else:
        report.updated += 1
