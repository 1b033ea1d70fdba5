"""Planning with a suppression list: a suppressed email is neither created nor matched on either side."""

from syncapp.engine import ContactRecord, Exclusion, plan_batch
from syncapp.engine.records import Policy
from tests.engine.test_plan import ADA, link, local, remote

REASON = "Suppressed by a privacy request"
GRACE = ContactRecord(email="grace@example.com", first_name="Grace")


def test_unlinked_records_with_a_suppressed_email_are_excluded_without_their_email():
    result = plan_batch(
        locals=[local(1), local(2, record=GRACE)],
        remotes=[remote("9"), remote("10"), remote("11", record=GRACE)],
        links=[],
        policy=Policy(),
        suppressed={"ada@example.com": REASON},
    )

    assert [(pair.contact_id, pair.remote_id) for pair in result.pairs] == [(2, "11")]
    assert sorted(result.excluded, key=lambda e: (e.side, e.record_id)) == [
        Exclusion("app", "1", "", REASON, Exclusion.SUPPRESSED),
        Exclusion("crm", "10", "", REASON, Exclusion.SUPPRESSED),
        Exclusion("crm", "9", "", REASON, Exclusion.SUPPRESSED),
    ]


def test_a_linked_pair_is_planned_as_before():
    """The link decides once it exists: an operator lifts or forgets, the plan does not unlink."""
    result = plan_batch(
        locals=[local(1)],
        remotes=[remote("9", record=ADA.with_values({"first_name": "Augusta"}))],
        links=[link(1, "9")],
        policy=Policy(),
        suppressed={"ada@example.com": REASON},
    )

    (pair,) = result.pairs
    assert (pair.local_op, pair.local_values) == ("update", {"first_name": "Augusta"})
    assert result.excluded == []
