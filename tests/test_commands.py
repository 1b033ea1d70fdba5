"""Management commands: tenant, contacts import/export, connection add/list, sync; progress bars and --help."""

import argparse
import io
import json
from pathlib import Path

import pytest
import responses
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command, find_commands, load_command_class
from responses import matchers

import syncapp.management
from syncapp.models import Contact, CrmConnection, OutboxEntry, Tenant
from syncapp.services.contacts import contact_create
from tests.fakes import InMemoryCrm

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_tenant_create_with_a_member_who_can_log_in():
    out, _ = run("tenant", "create", "acme", "--user", "ann", "--password", "pw-ann-12345")
    assert "Created tenant acme" in out
    user = authenticate(username="ann", password="pw-ann-12345")
    assert user is not None and Tenant.objects.get(slug="acme").members.filter(pk=user.pk).exists()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-1", "too short"),
        ("password1234", "too common"),
        ("384759102846", "entirely numeric"),
        ("annabelle-smith", "too similar to the username"),
    ],
)
def test_tenant_create_refuses_a_weak_password_and_creates_nothing(password, message):
    with pytest.raises(CommandError, match=message):
        run("tenant", "create", "acme", "--user", "annabelle-smith", "--password", password)
    assert not Tenant.objects.exists()
    assert not get_user_model().objects.exists()


def test_tenant_create_refuses_an_invalid_username():
    with pytest.raises(CommandError, match="Enter a valid username"):
        run("tenant", "create", "acme", "--user", "ann smith", "--password", "pw-ann-12345")
    assert not Tenant.objects.exists()


def test_tenant_create_does_not_give_an_existing_user_to_another_tenant_without_the_flag():
    run("tenant", "create", "acme", "--user", "ann", "--password", "pw-ann-12345")

    with pytest.raises(CommandError, match="--add-existing-user"):
        run("tenant", "create", "globex", "--user", "ann")
    assert not Tenant.objects.filter(slug="globex").exists()

    run("tenant", "create", "globex", "--user", "ann", "--add-existing-user")
    ann = get_user_model().objects.get(username="ann")
    assert set(ann.membership_set.values_list("tenant__slug", flat=True)) == {"acme", "globex"}
    assert authenticate(username="ann", password="pw-ann-12345") == ann


def test_tenant_create_does_not_change_an_existing_users_password_without_the_flag():
    run("tenant", "create", "acme", "--user", "ann", "--password", "pw-ann-12345")

    with pytest.raises(CommandError, match="--reset-password"):
        run("tenant", "create", "globex", "--user", "ann", "--add-existing-user", "--password", "new-pw-ann-999")
    assert authenticate(username="ann", password="pw-ann-12345") is not None
    assert not Tenant.objects.filter(slug="globex").exists()

    with pytest.raises(CommandError, match="too common"):
        run(
            "tenant",
            "create",
            "globex",
            "--user",
            "ann",
            "--add-existing-user",
            "--reset-password",
            "--password",
            "password1234",
        )
    assert authenticate(username="ann", password="pw-ann-12345") is not None

    run(
        "tenant",
        "create",
        "globex",
        "--user",
        "ann",
        "--add-existing-user",
        "--reset-password",
        "--password",
        "new-pw-ann-999",
    )
    assert authenticate(username="ann", password="pw-ann-12345") is None
    assert authenticate(username="ann", password="new-pw-ann-999") is not None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--password", "pw-ann-12345"], "--password needs --user"),
        (["--add-existing-user"], "--add-existing-user needs --user"),
        (["--user", "ann", "--reset-password"], "--reset-password needs --password"),
    ],
)
def test_tenant_create_flags_that_need_another(flags, message):
    with pytest.raises(CommandError, match=message):
        run("tenant", "create", "acme", *flags)
    assert not Tenant.objects.exists()


def test_tenant_create_refuses_a_taken_slug():
    run("tenant", "create", "acme")
    with pytest.raises(CommandError, match="already exists"):
        run("tenant", "create", "acme")


def test_import_creates_and_updates_through_the_services_and_reports_bad_rows(tenant, tmp_path):
    run("connection", "add", "--tenant", "acme", "--provider", "memory", "--account-id", "mem-42", "--token", "t")
    contact_create(tenant=tenant, values={"email": "old@example.com", "first_name": "Old"})
    OutboxEntry.objects.all().delete()
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "email,first_name,last_name,phone,job_title,pronouns\n"
        "new@example.com,New,Person,+1 555,CTO,she/her\n"
        "OLD@example.com,Renamed,,,,\n"
        "not-an-email,X,,,,\n"
        ",NoEmail,,,,\n"
        "short@example.com,too,few\n"
        "new@example.com,Dup,,,,\n",
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="3 rejected, each listed above") as exit_info:
        call_command("contacts", "import", "--tenant", "acme", str(csv_file), stdout=out, stderr=err)

    assert exit_info.value.returncode == 1
    assert "2 created" not in out.getvalue() and "1 created, 2 updated" in out.getvalue()
    errors = err.getvalue().splitlines()
    assert errors == [
        f"{csv_file}:4: 'not-an-email' is not a valid email address.",
        f"{csv_file}:5: email is required",
        f"{csv_file}:6: expected 6 columns, found 3",
    ]
    new = Contact.objects.get(email="new@example.com")
    assert (new.first_name, new.pronouns) == ("Dup", "she/her")
    assert Contact.objects.get(email="old@example.com").first_name == "Renamed"
    assert OutboxEntry.objects.filter(connection__provider="memory").count() == 3


def test_import_refuses_a_wrong_header(tenant, tmp_path):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("mail,name\nx@example.com,X\n")
    with pytest.raises(CommandError, match="header must be"):
        run("contacts", "import", "--tenant", "acme", str(csv_file))
    assert not Contact.objects.exists()


def test_export_round_trips_through_import(tenant, tmp_path):
    contact_create(tenant=tenant, values={"email": "b@example.com", "first_name": "B, with comma"})
    contact_create(tenant=tenant, values={"email": "a@example.com", "pronouns": "they/them"})
    out, _ = run("contacts", "export", "--tenant", "acme")
    assert out.splitlines() == [
        "email,first_name,last_name,phone,job_title,pronouns",
        "a@example.com,,,,,they/them",
        'b@example.com,"B, with comma",,,,',
    ]
    path = tmp_path / "out.csv"
    run("contacts", "export", "--tenant", "acme", str(path))
    Tenant.objects.create(slug="copy", name="Copy")
    out, _ = run("contacts", "import", "--tenant", "copy", str(path))
    assert "2 created" in out
    assert Contact.objects.filter(tenant__slug="copy", first_name="B, with comma").exists()


def test_export_neutralises_formula_cells_and_imports_them_back_unchanged(tenant, tmp_path):
    contact_create(
        tenant=tenant,
        values={"email": "f@example.com", "first_name": "=1+1", "last_name": "@SUM(A1)", "phone": "+1 555 0100"},
    )
    contact_create(tenant=tenant, values={"email": "g@example.com", "first_name": "-2+3", "job_title": "'=quoted"})
    path = tmp_path / "out.csv"

    run("contacts", "export", "--tenant", "acme", str(path))

    assert path.read_text().splitlines()[1:] == [
        "f@example.com,'=1+1,'@SUM(A1),'+1 555 0100,,",
        "g@example.com,'-2+3,,,''=quoted,",
    ]
    Tenant.objects.create(slug="copy", name="Copy")
    run("contacts", "import", "--tenant", "copy", str(path))
    copied = Contact.objects.filter(tenant__slug="copy").order_by("email")
    assert [(c.first_name, c.last_name, c.phone, c.job_title) for c in copied] == [
        ("=1+1", "@SUM(A1)", "+1 555 0100", ""),
        ("-2+3", "", "", "'=quoted"),
    ]


def test_connection_add_checks_the_token_stores_it_encrypted_and_prints_json(tenant, settings):
    settings.CRM_API_ALLOWED_HOSTS = ["127.0.0.1:8765"]  # a sandbox, allowed explicitly
    with responses.RequestsMock() as mock:
        # The CRM names the company the token opens: the account id need not be typed.
        mock.get(
            "http://127.0.0.1:8765/pipedrive/777/api/v1/users/me",
            json={"success": True, "data": {"company_id": 777}},
            match=[matchers.header_matcher({"x-api-token": "pd-secret-token"})],
        )
        out, _ = run(
            "connection", "add", "--tenant", "acme", "--provider", "pipedrive",
            "--token", "pd-secret-token", "--api-base", "http://127.0.0.1:8765/pipedrive/777",
        )  # fmt: skip
    printed = json.loads(out)
    connection = CrmConnection.objects.get(pk=printed["id"])
    assert printed["provider"] == "pipedrive" and printed["account_id"] == "777" and "webhook_url" in printed
    assert "pd-secret-token" not in out
    assert "pd-secret-token" not in connection.credentials_encrypted
    assert connection.credentials == {"access_token": "pd-secret-token"}

    listed, _ = run("connection", "list", "--tenant", "acme")
    assert [json.loads(line)["id"] for line in listed.splitlines()] == [connection.pk]
    assert json.loads(listed)["pronouns"] == "pronouns not configured"


def test_setup_pronouns_command_configures_the_field_and_is_idempotent(tenant):
    from tests.helpers import make_connection

    connection, crm = make_connection(tenant)
    out, _ = run("setup_pronouns", "--connection", str(connection.pk))
    assert "Created the pronouns field pronouns" in out
    out, _ = run("setup_pronouns", "--connection", str(connection.pk))
    assert "Using the pronouns field pronouns" in out
    assert crm.custom_fields == {"pronouns": "Pronouns"}
    listed, _ = run("connection", "list", "--tenant", "acme")
    assert json.loads(listed)["pronouns"] == "configured (pronouns)"


def test_connection_add_refuses_a_token_the_crm_refuses(tenant):
    with responses.RequestsMock() as mock:
        mock.get("https://api.hubapi.com/account-info/v3/details", status=401, json={"message": "Bad token."})
        with pytest.raises(CommandError, match=r"failed \(401\): Bad token\."):
            run("connection", "add", "--tenant", "acme", "--provider", "hubspot", "--token", "pat-revoked")
    assert not CrmConnection.objects.exists()


def test_connection_add_rejects_an_unknown_provider(tenant):
    with pytest.raises(CommandError):
        run("connection", "add", "--tenant", "acme", "--provider", "salesforce", "--account-id", "1", "--token", "t")


def test_sync_command_prints_counts_and_dry_run_prints_the_plan(tenant):
    InMemoryCrm("mem-1")
    run("connection", "add", "--tenant", "acme", "--provider", "memory", "--account-id", "mem-1", "--token", "t")
    connection = CrmConnection.objects.get(account_id="mem-1")
    contact_create(tenant=tenant, values={"email": "s@example.com"})

    out, _ = run("sync", "--connection", str(connection.pk), "--full", "--dry-run")
    assert "crm create" in out and "Planned manual sync" in out
    assert not InMemoryCrm.accounts["mem-1"].live()

    out, _ = run("sync", "--connection", str(connection.pk))
    assert "created 1" in out
    assert len(InMemoryCrm.accounts["mem-1"].live()) == 1


def test_sync_command_reports_a_missing_connection():
    with pytest.raises(CommandError, match="No connection 999"):
        run("sync", "--connection", "999")


def test_import_of_a_file_that_is_not_utf8_imports_nothing(tenant, tmp_path):
    csv_file = tmp_path / "latin1.csv"
    rows = "".join(f"r{n}@example.com,Ren{n},,,,\n" for n in range(5_000))
    csv_file.write_bytes(("email,first_name,last_name,phone,job_title,pronouns\n" + rows).encode() + b"Ren\xe9,,,,,\n")
    with pytest.raises(CommandError, match=r"latin1\.csv: line 5002: not UTF-8 text \(byte 147835: invalid"):
        run("contacts", "import", "--tenant", "acme", str(csv_file))
    assert not Contact.objects.exists()


def test_setup_pronouns_offers_a_field_already_labelled_pronouns_and_creates_one_on_request(tenant):
    from tests.helpers import make_connection

    connection, crm = make_connection(tenant)
    crm.custom_fields["pref_pronouns"] = "Pronouns"
    with pytest.raises(CommandError, match="--map-existing pref_pronouns"):
        run("setup_pronouns", "--connection", str(connection.pk))
    out, _ = run("setup_pronouns", "--connection", str(connection.pk), "--create")
    assert "Created the pronouns field pronouns" in out
    assert crm.custom_fields == {"pref_pronouns": "Pronouns", "pronouns": "Pronouns"}


class TerminalIO(io.StringIO):
    """A stream that says it is a terminal, as stderr is when a person runs the command."""

    def isatty(self):
        return True


def memory_connection(tenant, *, contacts):
    InMemoryCrm("mem-1")
    run("connection", "add", "--tenant", "acme", "--provider", "memory", "--account-id", "mem-1", "--token", "t")
    for n in range(contacts):
        contact_create(tenant=tenant, values={"email": f"p{n}@example.com"})
    return CrmConnection.objects.get(account_id="mem-1")


def test_sync_progress_draws_a_bar_on_stderr_and_still_prints_the_counts(tenant):
    connection = memory_connection(tenant, contacts=7)

    out, err = run("sync", "--connection", str(connection.pk), "--full", "--progress")

    assert "Ran manual sync" in out and "created 7" in out
    assert "records" not in out and "\r" not in out
    # tqdm redraws the line with carriage returns; the total is unknown, so it counts with a rate.
    assert err.startswith("\r") and err.endswith("\n")
    assert err.rstrip("\n").rsplit("\r", 1)[-1].startswith("7 records [")
    assert "records/s]" in err
    assert len(InMemoryCrm.accounts["mem-1"].live()) == 7


def test_sync_draws_no_bar_when_stderr_is_not_a_terminal_or_with_no_progress(tenant):
    connection = memory_connection(tenant, contacts=3)

    out, err = run("sync", "--connection", str(connection.pk), "--full")
    assert "created 3" in out
    assert err == ""

    out, err = io.StringIO(), TerminalIO()
    call_command("sync", "--connection", str(connection.pk), "--full", "--no-progress", stdout=out, stderr=err)
    assert "Ran manual sync" in out.getvalue()
    assert err.getvalue() == ""


def test_sync_draws_the_bar_by_default_when_stderr_is_a_terminal(tenant):
    connection = memory_connection(tenant, contacts=2)
    out, err = io.StringIO(), TerminalIO()

    call_command("sync", "--connection", str(connection.pk), "--full", stdout=out, stderr=err)

    assert "created 2" in out.getvalue()
    assert err.getvalue().rstrip("\n").rsplit("\r", 1)[-1].startswith("2 records [")


def test_import_progress_reaches_the_number_of_rows(tenant, tmp_path):
    csv_file = tmp_path / "contacts.csv"
    # One row per line: a quote left open is a bad row, and so is the line after it; a blank line and a
    # bad row are rows the import reads too.
    csv_file.write_text(
        "email,first_name,last_name,phone,job_title,pronouns\n"
        + "".join(f"r{n}@example.com,R{n},,,,\n" for n in range(10))
        + 'multi@example.com,"Two\nlines",,,,\n'
        + "\n"
        + "bad,,,,,\n",
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="3 rejected"):
        call_command("contacts", "import", "--tenant", "acme", str(csv_file), "--progress", stdout=out, stderr=err)

    assert "10 created" in out.getvalue() and "3 rejected" in out.getvalue()
    bar, *errors = err.getvalue().split("\n")
    assert bar.startswith("\r") and bar.rsplit("\r", 1)[-1].startswith("100%|")
    assert " 14/14 [" in bar.rsplit("\r", 1)[-1] and "rows/s]" in bar
    assert errors == [
        f"{csv_file}:12: unterminated quote",
        f"{csv_file}:13: expected 6 columns, found 5",
        f"{csv_file}:15: 'bad' is not a valid email address.",
        "",
    ]


def test_import_reports_an_unterminated_quote_at_its_line_and_imports_the_rows_after_it(tenant, tmp_path):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "email,first_name,last_name,phone,job_title,pronouns\n"
        "a@example.com,A,,,,\n"
        'b@example.com,"Open,,,,\n'
        "c@example.com,C,,,,\n"
        "d@example.com,D,,,,\n"
    )
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="1 rejected"):
        call_command("contacts", "import", "--tenant", "acme", str(csv_file), stdout=out, stderr=err)

    assert err.getvalue() == f"{csv_file}:3: unterminated quote\n"
    assert "3 created" in out.getvalue() and "1 rejected" in out.getvalue()
    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        "a@example.com",
        "c@example.com",
        "d@example.com",
    ]


def test_import_draws_no_bar_when_stderr_is_not_a_terminal(tenant, tmp_path):
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("email,first_name,last_name,phone,job_title,pronouns\na@example.com,A,,,,\n")

    out, err = run("contacts", "import", "--tenant", "acme", str(csv_file))

    assert "1 created" in out
    assert err == ""


def test_connection_list_reports_an_unknown_tenant():
    with pytest.raises(CommandError, match="No tenant 'nobody'"):
        run("connection", "list", "--tenant", "nobody")


def test_export_to_a_file_that_cannot_be_written_is_a_clear_error(tenant, tmp_path):
    with pytest.raises(CommandError, match=r"Cannot write .*missing/out\.csv: No such file or directory"):
        run("contacts", "export", "--tenant", "acme", str(tmp_path / "missing" / "out.csv"))


def test_bench_sync_refuses_an_unknown_provider_before_starting_anything():
    with pytest.raises(CommandError, match="Unknown providers: salesforce; choose among hubspot, pipedrive"):
        run("bench_sync", "--providers", "hubspot,salesforce")


COMMANDS = [
    "bench_sync", "connection", "contacts", "crm_sandbox", "demo", "replay_webhooks",
    "schedule_syncs", "setup_pronouns", "setup_webhooks", "suppression", "sync", "tenant",
]  # fmt: skip
# The options BaseCommand adds to every command: Django documents them.
DJANGO_OPTIONS = {
    "-h", "--help", "--version", "-v", "--verbosity", "--settings", "--pythonpath",
    "--traceback", "--no-color", "--force-color", "--skip-checks",
}  # fmt: skip


def undocumented(parser, prefix):
    """Return the arguments and subcommands of ``parser`` (and of its subcommands) that have no help."""
    missing = []
    for action in parser._actions:
        if DJANGO_OPTIONS & set(action.option_strings):
            continue
        name = f"{prefix} {'/'.join(action.option_strings) or action.dest}"
        if not (action.help or "").strip():
            missing.append(name)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if not (choice.help or "").strip():
                    missing.append(f"{prefix} {choice.dest}")
            for sub_name, sub_parser in action.choices.items():
                missing += undocumented(sub_parser, f"{prefix} {sub_name}")
    return missing


def test_every_command_is_one_of_those_whose_help_is_checked():
    assert sorted(find_commands(str(Path(syncapp.management.__file__).parent))) == COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_help_describes_the_command_and_every_argument(name):
    command = load_command_class("syncapp", name)
    parser = command.create_parser("manage.py", name)

    assert command.help.strip() and "\n\n" not in command.help
    assert undocumented(parser, name) == []
    assert command.help.split()[0] in parser.format_help()
