"""Batch planning: first contact by email, creates, deletes, restores and merges."""

from syncapp.engine import (
    ContactRecord,
    LinkState,
    LocalState,
    Policy,
    RemoteState,
    oldest_first,
    plan_batch,
    plan_pair,
)
from syncapp.engine.plan import rebase_on_concurrent_edit

ADA = ContactRecord(email="ada@example.com", first_name="Ada")


def local(cid=1, record=ADA, deleted=False):
    return LocalState(contact_id=cid, record=record, deleted=deleted)


def remote(rid="9", record=ADA, deleted=False, merged_ids=()):
    return RemoteState(remote_id=rid, record=record, deleted=deleted, version="v1", merged_ids=merged_ids)


def link(cid=1, rid="9", base=ADA, deleted=False):
    return LinkState(contact_id=cid, remote_id=rid, base=base, deleted=deleted)


def plan(**kwargs):
    kwargs.setdefault("locals", [])
    kwargs.setdefault("remotes", [])
    kwargs.setdefault("links", [])
    return plan_batch(policy=Policy(), **kwargs)


def test_unlinked_records_with_the_same_email_in_any_case_are_linked_not_duplicated():
    result = plan(
        locals=[local(record=ContactRecord(email="Ada@Example.com "))],
        remotes=[remote(record=ContactRecord(email="ada@example.com", first_name="Ada"))],
    )
    (pair,) = result.pairs
    assert (pair.contact_id, pair.remote_id) == (1, "9")
    assert pair.local_op == "update" and pair.local_values == {"first_name": "Ada"}
    assert pair.remote_op == ""


def test_unmatched_app_contact_is_created_in_the_crm():
    (pair,) = plan(locals=[local()]).pairs
    assert (pair.remote_id, pair.remote_op, pair.remote_values["email"]) == (None, "create", "ada@example.com")


def test_unmatched_crm_record_is_created_in_the_app():
    (pair,) = plan(remotes=[remote()]).pairs
    assert (pair.contact_id, pair.local_op, pair.base) == (None, "create", ADA)


def test_records_without_email_are_excluded_and_listed():
    result = plan(locals=[local(record=ContactRecord(first_name="No"))], remotes=[remote(record=ContactRecord())])
    assert result.pairs == []
    assert sorted((e.side, e.reason) for e in result.excluded) == [
        ("app", "no email address"),
        ("crm", "no email address"),
    ]


def test_several_crm_records_with_one_email_link_the_oldest_and_report_the_others():
    result = plan(locals=[local()], remotes=[remote("120"), remote("15"), remote("300")])
    (pair,) = result.pairs
    assert pair.remote_id == "15"
    assert sorted(e.record_id for e in result.excluded) == ["120", "300"]


def test_several_crm_records_with_one_new_email_create_one_app_contact():
    result = plan(remotes=[remote("20"), remote("7")])
    (pair,) = result.pairs
    assert (pair.remote_id, pair.local_op) == ("7", "create")
    assert [e.record_id for e in result.excluded] == ["20"]


def test_after_linking_the_remote_id_is_the_key_so_an_email_change_follows_the_link():
    new = ADA.with_values({"email": "ada@new.example"})
    (pair,) = plan(locals=[local()], remotes=[remote(record=new)], links=[link()]).pairs
    assert (pair.contact_id, pair.remote_id, pair.local_values) == (1, "9", {"email": "ada@new.example"})


def test_an_echo_of_our_own_write_changes_nothing():
    (pair,) = plan(locals=[local()], remotes=[remote()], links=[link()]).pairs
    assert pair.is_noop and pair.base == ADA


def test_crm_delete_soft_deletes_the_app_contact():
    (pair,) = plan(locals=[local()], links=[link()], absent_remote_ids=frozenset({"9"})).pairs
    assert (pair.local_op, pair.remote_op, pair.deleted) == ("delete", "", True)


def test_app_delete_archives_the_crm_record():
    (pair,) = plan(locals=[local(deleted=True)], remotes=[remote()], links=[link()]).pairs
    assert (pair.local_op, pair.remote_op, pair.deleted) == ("", "archive", True)


def test_app_restore_revives_the_crm_record_with_all_values():
    newer = ADA.with_values({"phone": "5"})
    (pair,) = plan(locals=[local(record=newer)], remotes=[remote(deleted=True)], links=[link(deleted=True)]).pairs
    assert pair.remote_op == "restore" and pair.remote_values["phone"] == "5" and not pair.deleted


def test_crm_restore_revives_the_app_contact_and_pulls_its_changes():
    newer = ADA.with_values({"phone": "7"})
    (pair,) = plan(locals=[local(deleted=True)], remotes=[remote(record=newer)], links=[link(deleted=True)]).pairs
    assert (pair.local_op, pair.local_values) == ("restore", {"phone": "7"})


def test_delete_on_one_side_and_edit_on_the_other_deletes_and_keeps_the_base_for_a_later_restore():
    edited = ADA.with_values({"phone": "8"})
    (pair,) = plan(locals=[local(record=edited)], remotes=[remote(deleted=True)], links=[link()]).pairs
    assert (pair.local_op, pair.deleted, pair.base) == ("delete", True, ADA)


def test_linked_record_not_read_is_left_for_a_batch_that_reads_it():
    edited = ADA.with_values({"phone": "8"})
    result = plan(locals=[local(record=edited)], links=[link()])
    assert result.pairs == [] and result.excluded == []


def test_an_unread_linked_contact_still_claims_its_email():
    """A duplicate CRM record named by a webhook neither overwrites nor duplicates the linked contact."""
    result = plan(locals=[local()], remotes=[remote("10")], links=[link()])
    assert result.pairs == []
    assert [(e.side, e.record_id) for e in result.excluded] == [("crm", "10")]


def test_crm_merge_repoints_the_link_to_the_surviving_record():
    survivor = remote("50", record=ADA.with_values({"phone": "9"}), merged_ids=("9",))
    (pair,) = plan(locals=[local()], remotes=[survivor], links=[link()]).pairs
    assert (pair.remote_id, pair.relinked_from, pair.local_values) == ("50", "9", {"phone": "9"})


def test_crm_merge_into_a_record_linked_elsewhere_deletes_the_merged_away_contact():
    bob = ContactRecord(email="bob@example.com")
    survivor = remote("50", record=bob, merged_ids=("9",))
    result = plan(locals=[local(), local(2, bob)], remotes=[survivor], links=[link(), link(2, "50", base=bob)])
    by_contact = {p.contact_id: p for p in result.pairs}
    assert by_contact[1].local_op == "delete"
    assert by_contact[2].is_noop


def test_crm_record_whose_email_an_already_linked_contact_holds_is_excluded_not_duplicated():
    result = plan(locals=[local()], remotes=[remote("9"), remote("10")], links=[link()])
    assert [p.remote_id for p in result.pairs] == ["9"]
    assert [(e.record_id, e.side) for e in result.excluded] == [("10", "crm")]


def test_failed_push_keeps_the_old_base_so_the_push_is_retried():
    edited = ADA.with_values({"phone": "8"})
    pair = plan_pair(local=local(record=edited), remote=remote(), link=link(), policy=Policy())
    assert pair.base.phone == "8" and pair.base_if_remote_fails.phone == ""


def test_fields_the_crm_lacks_are_neither_pushed_nor_pulled_and_keep_their_base():
    policy = Policy(ignored_fields=frozenset({"pronouns"}))
    mine = ADA.with_values({"pronouns": "she/her", "phone": "1"})
    pair = plan_pair(local=local(record=mine), remote=remote(), link=link(), policy=policy)
    assert pair.remote_values == {"phone": "1"} and pair.base.pronouns == ""
    (create,) = plan_batch(locals=[local(record=mine)], remotes=[], links=[], policy=policy).pairs
    assert "she/her" not in create.remote_values.values() and create.base.pronouns == ""


def test_a_person_editing_a_field_the_plan_pulls_keeps_the_edit_and_the_conflict_comes_next():
    planned = local(record=ADA)
    pair = plan_pair(
        local=planned, remote=remote(record=ADA.with_values({"phone": "crm"})), link=link(), policy=Policy()
    )
    current = local(record=ADA.with_values({"phone": "person"}))
    rebased = rebase_on_concurrent_edit(pair=pair, planned=planned, current=current, link=link())
    assert (rebased.local_op, rebased.local_values) == ("", {})
    assert rebased.base.phone == ADA.phone  # both sides now differ from it: a conflict next time


def test_a_person_editing_another_field_still_gets_the_pulled_values():
    planned = local(record=ADA)
    pair = plan_pair(
        local=planned, remote=remote(record=ADA.with_values({"phone": "crm"})), link=link(), policy=Policy()
    )
    current = local(record=ADA.with_values({"first_name": "Person"}))
    rebased = rebase_on_concurrent_edit(pair=pair, planned=planned, current=current, link=link())
    assert (rebased.local_op, rebased.local_values, rebased.base.phone) == ("update", {"phone": "crm"}, "crm")


def test_a_person_deleting_the_contact_while_the_crm_delete_is_applied_agrees_with_it():
    planned = local(record=ADA)
    pair = plan_pair(local=planned, remote=remote(deleted=True), link=link(), policy=Policy())
    assert pair.local_op == "delete"
    rebased = rebase_on_concurrent_edit(pair=pair, planned=planned, current=local(deleted=True), link=link())
    assert rebased.local_op == "" and rebased.deleted is True


def test_a_person_deleting_the_contact_while_values_are_pulled_keeps_both():
    planned = local(record=ADA)
    pair = plan_pair(local=planned, remote=remote(record=ADA.with_values({"phone": "9"})), link=link(), policy=Policy())
    rebased = rebase_on_concurrent_edit(pair=pair, planned=planned, current=local(deleted=True), link=link())
    assert (rebased.local_op, rebased.local_values, rebased.deleted) == ("update", {"phone": "9"}, False)


def test_an_app_contact_whose_email_is_a_crm_records_secondary_address_is_not_created_twice():
    holder = RemoteState(
        remote_id="40", record=ContactRecord(email="main@example.com"), other_emails=("Ada@Example.com",)
    )
    result = plan(locals=[local()], remotes=[holder])
    assert [(p.contact_id, p.remote_op) for p in result.pairs] == [(None, "")]  # the holder comes in as itself
    (exclusion,) = result.excluded
    assert (exclusion.side, exclusion.code) == ("app", "secondary_email") and "40" in exclusion.reason


def test_oldest_first_sorts_numeric_ids_by_value_and_others_after_them_by_text():
    # One rule for the plan and for an adapter's restore: "100" is younger than "99", "ab" is not older than "100".
    assert sorted(["ab", "100", "99", "010", "a"], key=oldest_first) == ["010", "99", "100", "a", "ab"]
