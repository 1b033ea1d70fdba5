"""The adapter contract's restore: a live record with the email already is reported, not created twice."""

from syncapp.engine import ContactRecord, RemoteState
from syncapp.providers.base.adapter import CrmAdapter


class Holding(CrmAdapter):
    """A CRM that holds records with the given ids for any email asked, and creates nothing."""

    def __init__(self, remote_ids):
        super().__init__(connection=None)
        self.remote_ids = remote_ids

    def find_by_emails(self, emails):
        return [RemoteState(remote_id=rid, record=ContactRecord(email=emails[0])) for rid in self.remote_ids]


def test_a_restore_that_finds_several_records_with_the_email_points_at_the_oldest_as_the_plan_does():
    # The plan's rule (engine.oldest_first): "100" is older than "ab", although it is the longer id.
    result = Holding(["ab", "100", "99x"]).restore("gone", ContactRecord(email="dup@example.com"))

    assert (result.ok, result.existing_remote_id) == (False, "100")
