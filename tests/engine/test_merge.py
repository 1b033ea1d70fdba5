"""The three-way table and the four strategies, one row at a time, without a database."""

from datetime import UTC, datetime

import pytest

from syncapp.engine import APP, CRM, ContactRecord, LocalState, Policy, RemoteState, merge_fields

EARLY = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
LATE = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
BASE = ContactRecord(email="ada@example.com", first_name="Ada", phone="1")


def merge(local_values, remote_values, *, policy=None, local_at=EARLY, remote_at=EARLY, base=BASE):
    local = LocalState(contact_id=1, record=BASE.with_values(local_values), modified_at=local_at)
    remote = RemoteState(remote_id="9", record=BASE.with_values(remote_values), modified_at=remote_at)
    return merge_fields(local=local, remote=remote, base=base, policy=policy or Policy())


def test_equal_sides_write_nothing_and_agree():
    result = merge({"first_name": "Ada L"}, {"first_name": "Ada L"})
    assert result.pull == {} and result.push == {} and result.conflicts == []
    assert result.agreed.first_name == "Ada L"


def test_only_crm_changed_pulls_into_the_app():
    result = merge({}, {"phone": "2"})
    assert result.pull == {"phone": "2"} and result.push == {}
    assert result.agreed.phone == "2"


def test_only_app_changed_pushes_to_the_crm():
    result = merge({"phone": "3"}, {})
    assert result.push == {"phone": "3"} and result.pull == {}
    assert result.agreed.phone == "3"


def test_both_changed_differently_is_a_conflict_the_crm_wins_by_default():
    result = merge({"phone": "app"}, {"phone": "crm"})
    (conflict,) = result.conflicts
    assert (conflict.field, conflict.local_value, conflict.remote_value) == ("phone", "app", "crm")
    assert conflict.winner == CRM and conflict.strategy == "crm_wins"
    assert result.pull == {"phone": "crm"} and result.push == {}


def test_conflict_records_both_timestamps():
    (conflict,) = merge({"phone": "a"}, {"phone": "c"}, local_at=EARLY, remote_at=LATE).conflicts
    assert (conflict.local_modified_at, conflict.remote_modified_at) == (EARLY, LATE)


def test_values_compare_normalised_so_case_of_email_and_spaces_are_no_change():
    result = merge({"email": " ADA@Example.com ", "first_name": "Ada "}, {})
    assert result.push == {} and result.pull == {}


@pytest.mark.parametrize(
    ("local_at", "remote_at", "winner"),
    [(LATE, EARLY, APP), (EARLY, LATE, CRM), (LATE, LATE, CRM), (None, LATE, CRM)],
)
def test_latest_wins_compares_each_sides_own_edit_time(local_at, remote_at, winner):
    result = merge(
        {"phone": "a"}, {"phone": "c"}, policy=Policy(strategy="latest_wins"), local_at=local_at, remote_at=remote_at
    )
    assert result.conflicts[0].winner == winner
    assert result.agreed.phone == ("a" if winner == APP else "c")


def test_manual_review_overwrites_nothing_and_keeps_the_base():
    result = merge({"phone": "a", "first_name": "X"}, {"phone": "c"}, policy=Policy(strategy="manual_review"))
    (conflict,) = result.conflicts
    assert conflict.winner is None
    assert result.pull == {} and result.push == {"first_name": "X"}
    assert result.agreed.phone == BASE.phone


def test_field_priority_gives_each_field_its_owner_and_the_crm_the_rest():
    policy = Policy(strategy="field_priority", field_owners={"phone": "app"})
    result = merge({"phone": "a", "job_title": "A"}, {"phone": "c", "job_title": "C"}, policy=policy)
    winners = {c.field: c.winner for c in result.conflicts}
    assert winners == {"phone": APP, "job_title": CRM}
    assert result.push == {"phone": "a"} and result.pull == {"job_title": "C"}


def test_first_contact_fills_empty_fields_from_either_side_and_conflicts_on_differences():
    local = LocalState(contact_id=1, record=ContactRecord(email="a@x.io", first_name="Ann", phone="1"))
    remote = RemoteState(remote_id="9", record=ContactRecord(email="a@x.io", last_name="Lee", phone="2"))
    result = merge_fields(local=local, remote=remote, base=None, policy=Policy())
    assert result.push == {"first_name": "Ann"}
    assert result.pull == {"last_name": "Lee", "phone": "2"}
    assert [c.field for c in result.conflicts] == ["phone"]
    assert result.agreed == ContactRecord(email="a@x.io", first_name="Ann", last_name="Lee", phone="2")
