"""CSV export and import: formulas neutralised and restored, files read as a stream, bad quotes kept to their line."""

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from syncapp.exceptions import ValidationError
from syncapp.models import Contact, Tenant
from syncapp.services import contacts_csv
from syncapp.services.contacts import contact_clean, contact_create
from syncapp.services.contacts_csv import contacts_csv_check, contacts_export_csv, contacts_import_csv
from syncapp.services.sync import connection_sync

pytestmark = pytest.mark.django_db

HEADER = "email,first_name,last_name,phone,job_title,pronouns\n"
HOSTILE = [
    '=HYPERLINK("http://evil.example")',
    "@SUM(A1)",
    "-1+1",
    "+cmd|' /C calc'!A0",
    "'=1+1",
    "''@SUM(A1)",
    "Smith;=1+1",
    "Smith,-2+3",
]
# A spreadsheet evaluates a cell that starts with one of these, and one that splits a cell on , ; or tab
# evaluates what follows the separator the same way.
EVALUATED = re.compile(r"(?:\A|[,;\t])[=+\-@\t\r\0]")


def export(tenant) -> str:
    out = io.StringIO()
    contacts_export_csv(tenant=tenant, stream=out)
    return out.getvalue()


def import_text(tenant, text: str) -> contacts_csv.ImportReport:
    data = text.encode()
    assert contacts_csv_check(stream=io.BytesIO(data)) >= 0
    return contacts_import_csv(tenant=tenant, stream=io.BytesIO(data))


def evaluated_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row if EVALUATED.search(cell)]


def records(tenant) -> list[dict]:
    return [contact.to_record().as_dict() for contact in Contact.objects.filter(tenant=tenant).order_by("email")]


def test_export_neutralises_every_formula_a_contact_edit_can_store(tenant):
    for n, value in enumerate(HOSTILE):
        contact_create(tenant=tenant, values={"email": f"p{n}@example.com", "first_name": value, "job_title": value})
    contact_create(tenant=tenant, values={"email": "=cmd@example.com", "phone": "+1 555 0100"})

    text = export(tenant)

    assert evaluated_cells(text) == []
    assert "'=cmd@example.com,,,'+1 555 0100,," in text.splitlines()
    assert 'p0@example.com,"\'=HYPERLINK(""http://evil.example"")"' in text
    assert "p4@example.com,''=1+1,," in text
    assert "p6@example.com,Smith;'=1+1,," in text


def test_export_neutralises_tab_and_carriage_return_starts_and_line_breaks_in_stored_values(tenant):
    # Values written around the contact services (older data, a direct write): a leading tab or carriage
    # return, which the services strip, and line breaks, one of them hiding a row.
    for n, value in enumerate(["\t=1+1", "\r=1+1", "x\n=1+1", "x\r\nvictim@example.com,Evil,,,,"]):
        Contact.objects.create(tenant=tenant, email=f"s{n}@example.com", first_name=value)

    text = export(tenant)

    assert evaluated_cells(text) == []
    assert len(text.splitlines()) == 5
    assert text.splitlines()[1:3] == ["s0@example.com,'\t'=1+1,,,,", "s1@example.com, =1+1,,,,"]
    assert "s2@example.com,x =1+1,,,," in text.splitlines()


def test_export_neutralises_formulas_typed_in_the_web_form(tenant):
    client = Client()
    assert client.login(username="alice", password="pw-alice-123")
    client.post(reverse("syncapp:contact-new"), {"email": "web@example.com", "first_name": "@SUM(A1)", "phone": "-1"})

    assert Contact.objects.filter(email="web@example.com", first_name="@SUM(A1)").exists()
    assert "web@example.com,'@SUM(A1),,'-1,," in export(tenant).splitlines()


def test_export_neutralises_formulas_from_a_crm_user(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    crm.user_create(email="crm@example.com", first_name='=HYPERLINK("http://evil.example")', last_name="+1-1")
    connection_sync(connection=connection, full=True)

    text = export(tenant)

    assert Contact.objects.filter(email="crm@example.com", last_name="+1-1").exists()
    assert evaluated_cells(text) == []
    assert "'+1-1" in text


def test_an_export_imports_back_unchanged(tenant):
    for n, value in enumerate([*HOSTILE, "+1 555 0100", "'quoted", "it's", "a@b"]):
        contact_create(
            tenant=tenant,
            values={"email": f"p{n}@example.com", "first_name": value, "phone": value, "pronouns": value},
        )
    copy = Tenant.objects.create(slug="copy", name="Copy")

    report = import_text(copy, export(tenant))

    assert report.created == len(HOSTILE) + 4 and report.errors == []
    assert records(copy) == records(tenant)
    assert Contact.objects.get(tenant=copy, email="p8@example.com").phone == "+1 555 0100"
    # Imported again over itself, nothing changes.
    assert import_text(copy, export(copy)).unchanged == len(HOSTILE) + 4


def test_import_of_a_hand_made_file_drops_only_the_quote_that_escapes_a_formula(tenant):
    report = import_text(
        tenant,
        HEADER + "'=a@example.com,'=1+1,''-x,'plain,' '=no,Smith;'=1\n" + "b@example.com,=1+1,'+1 555 0100,'',it's,\n",
    )

    assert report.errors == []
    a = Contact.objects.get(email="=a@example.com").to_record()
    assert (a.first_name, a.last_name, a.phone, a.job_title, a.pronouns) == (
        "=1+1",
        "'-x",
        "'plain",
        "' '=no",
        "Smith;=1",
    )
    b = Contact.objects.get(email="b@example.com").to_record()
    assert (b.first_name, b.last_name, b.phone, b.job_title) == ("=1+1", "+1 555 0100", "''", "it's")


# Single-line values (the file has one row per line) with the formula starts and quotes made likely;
# no NUL, which PostgreSQL cannot store.
VALUE = st.text(
    st.one_of(
        st.sampled_from("'=+-@\t;, \"x"), st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\0")
    ),
    max_size=30,
)
EMAIL = st.builds(
    lambda start, local: f"{start}{local}@example.com",
    st.sampled_from(["", "=", "+", "-", "'", "'=", "''+"]),
    st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(EMAIL, st.lists(VALUE, min_size=5, max_size=5)), max_size=4, unique_by=lambda c: c[0]))
def test_any_export_imports_back_unchanged(tenant, contacts):
    values = [dict(zip(contacts_csv.HEADER, [email, *rest], strict=True)) for email, rest in contacts]
    try:
        cleaned = [contact_clean(v) for v in values]
    except ValidationError:
        assume(False)
    with transaction.atomic():
        for v in cleaned:
            contact_create(tenant=tenant, values=v)
        copy = Tenant.objects.create(slug="copy", name="Copy")
        text = export(tenant)

        report = import_text(copy, text)

        assert evaluated_cells(text) == []
        assert report.errors == [] and report.created == len(cleaned)
        assert records(copy) == records(tenant)
        transaction.set_rollback(True)


class ChunkOnlyStream(io.BytesIO):
    """A file that refuses to be read whole: only reads of at most ``limit`` bytes are answered."""

    def __init__(self, data: bytes, *, limit: int):
        super().__init__(data)
        self.limit = limit
        self.largest = 0

    def read(self, size=-1):
        if size is None or size < 0 or size > self.limit:
            raise AssertionError(f"read({size}) of the whole file")
        self.largest = max(self.largest, size)
        return super().read(size)

    def readline(self, size=-1):
        raise AssertionError("readline")

    def readlines(self, hint=-1):
        raise AssertionError("readlines")

    def __iter__(self):
        raise AssertionError("iteration")


def test_import_reads_the_file_a_chunk_at_a_time_and_imports_before_reaching_the_end(tenant):
    # Blank lines of spaces make a file of several chunks from a few contacts.
    data = (HEADER + "".join(f"r{n}@example.com,R{n},,,,\n{' ' * 5_000}\n" for n in range(40))).encode()
    stream = ChunkOnlyStream(data, limit=contacts_csv.CHUNK_SIZE)
    assert len(data) > 3 * contacts_csv.CHUNK_SIZE

    assert contacts_csv_check(stream=stream) == 80
    stream.seek(0)
    positions = []
    report = contacts_import_csv(tenant=tenant, stream=stream, progress=lambda _: positions.append(stream.tell()))

    assert report.created == 40 and len(positions) == 80
    assert stream.largest == contacts_csv.CHUNK_SIZE
    assert positions[0] <= contacts_csv.CHUNK_SIZE < len(data) == positions[-1]


def test_the_import_command_never_reads_the_file_whole(tenant, tmp_path, monkeypatch):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(HEADER + "".join(f"r{n}@example.com,R{n},,,,\n{' ' * 5_000}\n" for n in range(30)))
    data, opened, real_open = csv_file.read_bytes(), [], Path.open

    def open_in_chunks(path, *args, **kwargs):
        if path != csv_file:
            return real_open(path, *args, **kwargs)
        opened.append(ChunkOnlyStream(data, limit=contacts_csv.CHUNK_SIZE))
        return opened[-1]

    monkeypatch.setattr(Path, "open", open_in_chunks)
    call_command("contacts", "import", "--tenant", "acme", str(csv_file), stdout=io.StringIO())

    assert Contact.objects.count() == 30 and opened[0].largest == contacts_csv.CHUNK_SIZE


class TrickleStream(io.BytesIO):
    """A file that answers every read with one byte, so every line end and character is split across reads."""

    def read(self, size=-1):
        return super().read(1)


def test_lines_are_split_and_decoded_the_same_whatever_the_reads_cut(tenant):
    text = (
        "\ufeff" + HEADER.replace("\n", "\r\n") + "e@example.com,Zoë,,,,\r\rb@example.com,中,,,,\nc@example.com,C,,,,"
    )

    assert contacts_csv_check(stream=TrickleStream(text.encode())) == 4
    report = contacts_import_csv(tenant=tenant, stream=TrickleStream(text.encode()))

    assert (report.created, report.errors) == (3, [])
    assert sorted(Contact.objects.values_list("first_name", flat=True)) == ["C", "Zoë", "中"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"\xef\xbb\xbf", "The file is empty"),
        (b"email,name\n", "line 1: the header must be"),
        (b'"email,first_name\n', "line 1: unterminated quote"),
        (
            HEADER.encode() + b"a@example.com,A,,,,\r\nb@example.com,Ren\xe9,,,,\n",
            r"line 3: not UTF-8 text \(byte 90: ",
        ),
        (HEADER.encode() + b"a@example.com,\xe2\x82", r"line 2: not UTF-8 text \(byte 66: unexpected end of data\)"),
    ],
)
def test_check_refuses_an_empty_file_a_wrong_header_and_bytes_that_are_not_utf8(data, message):
    with pytest.raises(ValidationError, match=message):
        contacts_csv_check(stream=TrickleStream(data))
    with pytest.raises(ValidationError, match=message):
        contacts_csv_check(stream=io.BytesIO(data))


def test_an_unterminated_quote_is_reported_at_its_line_and_the_rows_after_it_are_imported(tenant):
    report = import_text(
        tenant,
        HEADER
        + "a@example.com,A,,,,\n"
        + 'b@example.com,"Open,,,,\n'
        + "c@example.com,C,,,,\n"
        + 'd@example.com,"x""",,,,\n'
        + 'e@example.com,"Ends open ""\n'
        + "f@example.com,F,,,,",
    )

    assert report.errors == [(3, "unterminated quote"), (6, "unterminated quote")]
    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        "a@example.com",
        "c@example.com",
        "d@example.com",
        "f@example.com",
    ]
    assert Contact.objects.get(email="d@example.com").first_name == 'x"'


def test_a_line_too_long_for_any_contact_is_refused_and_the_next_one_imported(tenant):
    long_line = "x@example.com," + "y" * (2 * contacts_csv.CHUNK_SIZE) + ",,,,\n"

    report = import_text(tenant, HEADER + long_line + "ok@example.com,Ok,,,,\n")

    assert report.errors == [(2, f"the line is longer than {contacts_csv.MAX_LINE_LENGTH} characters")]
    assert list(Contact.objects.values_list("email", flat=True)) == ["ok@example.com"]
