"""The soak's checker catches each kind of disagreement, and passes sides that agree."""

from syncdev.checker import (
    LIVE,
    Edit,
    Record,
    Write,
    created_twice,
    duplicate_emails,
    field_mismatches,
    log_writes,
    lost_edits,
)

ADA = {"email": "ada@example.com", "first_name": "Ada", "last_name": "L", "phone": "", "job_title": "", "pronouns": ""}


def test_sides_that_agree_field_by_field_pass():
    app = [Record("1", ADA), Record("2", {**ADA, "email": "gone@example.com"}, deleted=True)]
    crm = [Record("h1", {**ADA, "email": "ADA@example.com"})]
    assert field_mismatches(tenant="t", app=app, crms={"hubspot:1": crm}) == []


def test_a_field_that_differs_a_missing_record_and_an_extra_record_are_mismatches():
    app = [Record("1", ADA), Record("2", {**ADA, "email": "bob@example.com"})]
    crm = [Record("h1", {**ADA, "job_title": "CTO"}), Record("h2", {**ADA, "email": "eve@example.com"})]
    found = field_mismatches(tenant="t", app=app, crms={"hubspot:1": crm})
    assert found == [
        "t hubspot:1: bob@example.com is missing",
        "t hubspot:1: eve@example.com is not in the app",
        "t hubspot:1: ada@example.com job_title is 'CTO', the app's ''",
    ]


def test_two_live_records_with_one_email_are_a_duplicate_but_a_deleted_one_is_not():
    records = [Record("1", ADA), Record("2", {**ADA, "email": "Ada@example.com"}), Record("3", ADA, deleted=True)]
    assert duplicate_emails(side="pipedrive:9", records=records) == ["pipedrive:9: ada@example.com is held by 1, 2"]
    assert duplicate_emails(side="pipedrive:9", records=records[1:]) == []


def write(kind, at, origin="api", email="ada@example.com"):
    return Write(account="pipedrive:9", email=email, kind=kind, at=at, origin=origin)


def test_a_second_creation_while_the_first_record_lives_is_created_twice():
    assert created_twice([write("create", 1), write("create", 2)]) == [
        "pipedrive:9: ada@example.com created again at 2.000 while its record lived"
    ]
    # The person already existed in the CRM (made by a user): the sync must have matched, not created.
    assert len(created_twice([write("create", 1, origin="user"), write("create", 2)])) == 1


def test_a_creation_after_the_record_was_deleted_is_not_created_twice():
    writes = [write("create", 1), write("delete", 2, origin="user"), write("create", 3), write("create", 4, email="b")]
    assert created_twice(writes) == []
    assert created_twice([write("create", 1), write("delete", 2), write("restore", 3, "user"), write("create", 4)])


def edit(field, value, at, side="app", email="ada@example.com"):
    return Edit(tenant="t", email=email, field=field, value=value, at=at, side=side)


def test_the_last_edit_of_a_field_must_survive():
    edits = [edit("job_title", "A", 1), edit("job_title", "B", 100, side="hubspot:1")]
    assert lost_edits(edits, {("t", "ada@example.com"): {"job_title": "B"}}, window=5) == []
    assert lost_edits(edits, {("t", "ada@example.com"): {"job_title": "A"}}, window=5) == [
        "t: ada@example.com job_title is 'A'; the last edit (hubspot:1, 100.000) set 'B'"
    ]


def test_a_true_conflict_may_be_settled_either_way():
    edits = [edit("job_title", "CRM", 99, side="hubspot:1"), edit("job_title", "App", 100)]
    assert lost_edits(edits, {("t", "ada@example.com"): {"job_title": "CRM"}}, window=5) == []
    assert lost_edits(edits, {("t", "ada@example.com"): {"job_title": "Other"}}, window=5)


def test_a_lost_deletion_or_restore_is_a_lost_edit_and_field_edits_of_a_deleted_person_are_not_judged():
    deleted = [edit(LIVE, "1", 0), edit("phone", "1", 50), edit(LIVE, "0", 100, side="pipedrive:9")]
    assert lost_edits(deleted, {("t", "ada@example.com"): None}, window=5) == []
    assert lost_edits(deleted, {("t", "ada@example.com"): {"phone": "1"}}, window=5) == [
        "t: ada@example.com _live is '1'; the last edit (pipedrive:9, 100.000) set '0'"
    ]
    restored = [*deleted, edit(LIVE, "1", 200)]
    assert len(lost_edits(restored, {("t", "ada@example.com"): None}, window=5)) == 1


def entry(method, path, body=None, status=200, provider="hubspot"):
    return {"provider": provider, "account_id": "9", "method": method, "path": path, "body": body,
            "status": status, "time": 1.0}  # fmt: skip


def test_the_request_log_gives_the_syncs_successful_creations_and_deletions():
    emails = {("hubspot:9", "11"): "old@example.com", ("pipedrive:9", "5"): "gone@example.com"}
    batch = {"inputs": [{"properties": {"email": "A@example.com"}}, {"properties": {"email": "b@example.com"}}]}
    log = [
        entry("POST", "/crm/v3/objects/contacts/batch/create", batch, status=201),
        entry("POST", "/crm/v3/objects/contacts/batch/create", batch, status=409),
        entry("POST", "/crm/v3/objects/contacts/batch/create", batch, status="dropped"),
        entry("POST", "/crm/v3/objects/contacts/batch/archive", {"inputs": [{"id": "11"}]}, status=204),
        entry("POST", "/crm/v3/objects/contacts/search", {"limit": 5}),
        entry("POST", "/api/v2/persons", {"emails": [{"value": "c@example.com", "primary": True}]}, 201, "pipedrive"),
        entry("DELETE", "/api/v2/persons/5", provider="pipedrive"),
    ]
    assert [(w.account, w.kind, w.email) for w in log_writes(log, emails=emails)] == [
        ("hubspot:9", "create", "a@example.com"),
        ("hubspot:9", "create", "b@example.com"),
        ("hubspot:9", "delete", "old@example.com"),
        ("pipedrive:9", "create", "c@example.com"),
        ("pipedrive:9", "delete", "gone@example.com"),
    ]
