"""CSV import and export of a tenant's contacts, through the same services as any app edit."""

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from syncapp.engine import FIELDS, normalize_email
from syncapp.exceptions import ValidationError
from syncapp.models import Tenant
from syncapp.selectors.contacts import contact_get_live_by_email, contact_list_live
from syncapp.services.contacts import contact_create, contact_update

HEADER = list(FIELDS)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # (line number, reason) for every row left out.
    errors: list[tuple[int, str]] = field(default_factory=list)


def contacts_import_csv(
    *, tenant: Tenant, stream: IO[str], progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Create or update (matched by email) one contact per row; bad rows are reported, good ones kept.

    Each row is its own transaction through the contact services, so every change reaches the outbox.
    ``progress``, when given, is called with 1 after each row below the header, blank and bad ones
    included: ``contacts_csv_count_rows`` tells how many calls there will be.
    """
    report = ImportReport()
    reader = csv.reader(stream)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise ValidationError("The file is empty; expected the header " + ",".join(HEADER)) from None
    except csv.Error as exc:
        raise ValidationError(f"line 1: not valid CSV ({exc})") from None
    if sorted(header) != sorted(HEADER):
        raise ValidationError(f"line 1: the header must be {','.join(HEADER)} (got {','.join(header)})")
    for row in _rows(reader):
        try:
            _import_record(tenant=tenant, header=header, row=row, report=report)
        except ValidationError as exc:
            report.errors.append((reader.line_num, str(exc)))
        if progress is not None:
            progress(1)
    return report


def contacts_csv_count_rows(*, stream: IO[str]) -> int:
    """Return how many rows below the header ``stream`` holds, as ``contacts_import_csv`` reads them."""
    return max(sum(1 for _ in _rows(csv.reader(stream))) - 1, 0)


def _rows(reader) -> Iterator[list[str] | csv.Error]:
    """Yield each row ``reader`` reads, or the csv.Error of a row it could not read."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield exc


def _import_record(*, tenant: Tenant, header: list[str], row: list[str] | csv.Error, report: ImportReport) -> None:
    if isinstance(row, csv.Error):
        raise ValidationError(f"not valid CSV ({row})")
    if not any(cell.strip() for cell in row):
        return
    if len(row) != len(header):
        raise ValidationError(f"expected {len(header)} columns, found {len(row)}")
    _import_row(tenant=tenant, values=dict(zip(header, row, strict=True)), report=report)


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


def contacts_export_csv(*, tenant: Tenant, stream: IO[str]) -> int:
    """Write the tenant's live contacts with the import header; return how many rows were written."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for contact in contact_list_live(tenant=tenant).iterator():
        writer.writerow([getattr(contact, name) for name in HEADER])
        count += 1
    return count
