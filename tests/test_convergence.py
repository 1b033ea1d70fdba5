"""Stateful property test: any interleaving of edits, syncs and failures converges.

Hypothesis drives an app and two in-memory CRMs (one refusing duplicate emails like HubSpot,
one allowing them like Pipedrive) through random creates, edits, deletes and restores on every
side, syncs of every kind in random order, duplicated and reordered webhook hints, and failures
before or after a CRM call takes effect. After a final quiescent sync every side must hold the
same live contacts, with no duplicates, every conflict won as its strategy says (the CRM under
crm_wins, the owner side under field_priority, nobody under manual_review), and no app write lost
unless a logged conflict overrode it.
"""

import itertools
import os
import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from syncapp.engine import FIELDS
from syncapp.exceptions import ValidationError
from syncapp.models import Contact, ContactLink, ExcludedRecord, SyncConflict, SyncRun
from syncapp.services.conflicts import conflict_pick
from syncapp.services.contacts import contact_create, contact_delete, contact_restore, contact_update
from syncapp.services.sync import connection_sync
from syncapp.services.tenants import tenant_create
from tests.helpers import make_connection

EMAILS = [f"p{n}@example.com" for n in range(5)]
VALUES = ["", "a", "b", "c"]
VALUE_FIELDS = [name for name in FIELDS if name != "email"]
SIDES = ["hub", "pipe"]
pick = st.integers(min_value=0, max_value=10**6)


class SyncMachine(RuleBasedStateMachine):
    @initialize(strategy=st.sampled_from(["crm_wins", "latest_wins", "field_priority", "manual_review"]))
    def connect(self, strategy):
        """Connect two CRMs under one strategy (people settle manual_review conflicts at the end)."""
        suffix = uuid.uuid4().hex[:8]
        self.tenant = tenant_create(slug=f"t-{suffix}")
        self.connections, self.crms = {}, {}
        for side in SIDES:
            self.connections[side], self.crms[side] = make_connection(
                self.tenant, f"{side}-{suffix}", unique_emails=(side == "hub"), conflict_strategy=strategy
            )
            self.connections[side].field_priorities = {"phone": "app", "first_name": "app"}
            self.connections[side].save(update_fields=["field_priorities"])
        self.strategy = strategy
        self.fresh = itertools.count()
        self.last_conflict_id = 0
        # (contact id, field) -> the last value a person wrote on the app side.
        self.app_writes: dict[tuple[int, str], str] = {}

    # Helpers -------------------------------------------------------------------

    def contacts(self, **filters):
        return list(Contact.objects.filter(tenant=self.tenant, **filters).order_by("pk"))

    def live_anywhere(self, email: str) -> bool:
        if Contact.objects.filter(tenant=self.tenant, email=email, deleted_at__isnull=True).exists():
            return True
        return any(crm.email_owner(email) for crm in self.crms.values())

    def new_email(self) -> str:
        return f"new{next(self.fresh)}@example.com"

    def remember(self, contact, values):
        for name, value in values.items():
            self.app_writes[(contact.pk, name)] = value

    # The app side ----------------------------------------------------------------

    @rule(email=st.sampled_from(EMAILS), name=st.sampled_from(VALUES), also_in=st.sampled_from([None, *SIDES]))
    def app_create(self, email, name, also_in):
        """Create a person in the app, and sometimes in a CRM too before any sync (first contact)."""
        if self.live_anywhere(email):
            return
        contact = contact_create(tenant=self.tenant, values={"email": email, "first_name": name})
        self.remember(contact, {"email": email, "first_name": name})
        if also_in:
            self.crms[also_in].user_create(email=email, first_name=VALUES[-1], last_name="x")

    @rule(i=pick, field=st.sampled_from(FIELDS), value=st.sampled_from(VALUES))
    def app_edit(self, i, field, value):
        contacts = self.contacts()
        if not contacts:
            return
        contact = contacts[i % len(contacts)]
        value = self.new_email() if field == "email" else value
        contact_update(contact=contact, values={field: value})
        self.remember(contact, {field: value})

    @rule(i=pick)
    def app_delete(self, i):
        contacts = self.contacts(deleted_at__isnull=True)
        if contacts:
            contact_delete(contact=contacts[i % len(contacts)])

    @rule(i=pick)
    def app_restore(self, i):
        contacts = self.contacts(deleted_at__isnull=False)
        if contacts:
            contact = contacts[i % len(contacts)]
            if not self.live_anywhere(contact.email):
                contact_restore(contact=contact)

    # The CRM sides --------------------------------------------------------------------

    @rule(side=st.sampled_from(SIDES), email=st.sampled_from(EMAILS), value=st.sampled_from(VALUES))
    def crm_create(self, side, email, value):
        if not self.live_anywhere(email):
            self.crms[side].user_create(email=email, phone=value)

    @rule(i=pick, value=st.sampled_from(VALUES))
    def pipe_duplicate(self, i, value):
        """Pipedrive lets a user add a second person with an email already in use."""
        records = sorted(self.crms["pipe"].live().items())
        if records:
            _, record = records[i % len(records)]
            if record["email"]:
                self.crms["pipe"].user_create(email=record["email"], phone=value)

    @rule(side=st.sampled_from(SIDES), i=pick, field=st.sampled_from(FIELDS), value=st.sampled_from(VALUES))
    def crm_edit(self, side, i, field, value):
        crm = self.crms[side]
        ids = sorted(crm.live())
        if ids:
            crm.user_edit(ids[i % len(ids)], **{field: self.new_email() if field == "email" else value})

    @rule(side=st.sampled_from(SIDES), i=pick)
    def crm_delete(self, side, i):
        ids = sorted(self.crms[side].live())
        if ids:
            self.crms[side].user_delete(ids[i % len(ids)])

    @rule(side=st.sampled_from(SIDES), i=pick)
    def crm_restore(self, side, i):
        crm = self.crms[side]
        archived = sorted(rid for rid, r in crm.records.items() if r.archived)
        if archived:
            rid = archived[i % len(archived)]
            if not self.live_anywhere(crm.records[rid].values.get("email", "")):
                crm.user_restore(rid)

    # Syncs and failures ------------------------------------------------------------------

    @rule(side=st.sampled_from(SIDES), kind=st.sampled_from(["incremental", "full", "push"]))
    def sync(self, side, kind):
        trigger = SyncRun.Trigger.PUSH if kind == "push" else None
        connection_sync(connection=self.connections[side], trigger=trigger, full=kind == "full")
        self.check_new_conflicts()

    @rule(side=st.sampled_from(SIDES), picks=st.lists(pick, min_size=1, max_size=6))
    def webhook_hints(self, side, picks):
        """Deliver notifications for random records: duplicated, reordered, stale or unknown."""
        ids = sorted(self.crms[side].records) + ["999999"]
        connection_sync(connection=self.connections[side], remote_ids=[ids[p % len(ids)] for p in picks])
        self.check_new_conflicts()

    @rule(side=st.sampled_from(SIDES), modes=st.lists(st.sampled_from([None, "before", "after"]), max_size=4))
    def fail_next_calls(self, side, modes):
        self.crms[side].failures = modes

    # Checks -------------------------------------------------------------------------------

    @invariant()
    def app_emails_unique_among_live_contacts(self):
        emails = [c.email for c in self.contacts(deleted_at__isnull=True) if c.email]
        assert len(emails) == len(set(emails))

    def check_new_conflicts(self):
        """Each conflict a run just logged went the strategy's way, visible on the contact right after."""
        new = SyncConflict.objects.filter(link__connection__tenant=self.tenant, pk__gt=self.last_conflict_id)
        for conflict in new.select_related("link__contact").order_by("pk"):
            self.last_conflict_id = conflict.pk
            assert conflict.strategy == self.strategy, conflict
            if self.strategy == "field_priority":  # the owners connect() set; fields left out go to the CRM
                expected_winner = "app" if conflict.field in ("phone", "first_name") else "crm"
            else:
                expected_winner = {"crm_wins": "crm", "manual_review": ""}.get(self.strategy)
            if expected_winner is not None:
                assert conflict.winner == expected_winner, conflict
            later = new.filter(link__contact=conflict.link.contact, field=conflict.field, pk__gt=conflict.pk)
            contact = conflict.link.contact
            if conflict.winner and not later.exists() and not contact.is_deleted:
                winning = conflict.remote_value if conflict.winner == "crm" else conflict.local_value
                assert getattr(contact, conflict.field) == winning, conflict
            if self.strategy == "manual_review":
                assert getattr(contact, conflict.field) == conflict.local_value or later.exists(), conflict

    def quiesce(self):
        """Let the ordinary paths (polls and pushes) settle; return how many writes the last round made."""
        writes = 0
        for side in SIDES:
            for trigger in (None, SyncRun.Trigger.PUSH):
                run = connection_sync(connection=self.connections[side], trigger=trigger)
                assert run.status == SyncRun.Status.SUCCEEDED, run.error
                self.check_new_conflicts()
                writes += run.created + run.updated + run.deleted
        return writes

    def teardown(self):
        for crm in self.crms.values():
            crm.failures = []
        for _ in range(6):
            for conflict in SyncConflict.objects.filter(link__connection__tenant=self.tenant, resolution="open"):
                first, other = ("crm", "app") if conflict.pk % 2 else ("app", "crm")
                try:
                    conflict_pick(conflict=conflict, winner=first, user=None)
                except ValidationError:
                    # An email another contact took meanwhile cannot be picked; the person keeps the other.
                    conflict_pick(conflict=conflict, winner=other, user=None)
            if (
                not self.quiesce()
                and not SyncConflict.objects.filter(link__connection__tenant=self.tenant, resolution="open").exists()
            ):
                break
        else:
            raise AssertionError("polls and pushes did not settle in six rounds")
        self.check_new_conflicts()
        for side in SIDES:
            run = connection_sync(connection=self.connections[side], full=True)
            assert (run.status, run.created, run.updated, run.deleted) == ("succeeded", 0, 0, 0), (
                f"a full sync of {side} still found work the outbox and polls missed: {run.error}"
            )
        self.check_converged()

    def check_converged(self):
        app = {c.email: c.to_record().as_dict() for c in self.contacts(deleted_at__isnull=True)}
        for side, crm in self.crms.items():
            connection = self.connections[side]
            links = ContactLink.objects.filter(connection=connection, contact__deleted_at__isnull=True)
            linked = {link.remote_id for link in links}
            synced = [record for rid, record in crm.live().items() if rid in linked]
            emails = [record["email"] for record in synced]
            assert len(emails) == len(set(emails)), f"duplicate emails in {side}: {emails}"
            assert {record["email"]: record for record in synced} == app, f"{side} differs from the app"
            # Every live CRM record is synced or listed as a duplicate of one that is.
            for rid, record in crm.live().items():
                if rid not in linked:
                    assert record["email"] in app, f"{side} record {rid} neither synced nor a duplicate"
                    assert ExcludedRecord.objects.filter(connection=connection, record_id=rid).exists()

        conflicts = SyncConflict.objects.filter(link__connection__tenant=self.tenant)
        for (contact_id, name), value in self.app_writes.items():
            contact = Contact.objects.get(pk=contact_id)
            kept = getattr(contact, name) == value
            # The sync wrote the value to the linked CRM record, or read it there (equal at first
            # contact); a later CRM edit may then replace it legitimately.
            reached_a_crm = value == "" or any(
                (link.remote_id, name, value) in self.crms[side].api_writes_set | self.crms[side].observed
                for side in SIDES
                for link in ContactLink.objects.filter(contact_id=contact_id, connection=self.connections[side])
            )
            overridden = conflicts.filter(link__contact_id=contact_id, field=name, local_value=value).exists()
            assert kept or reached_a_crm or overridden, f"app write {name}={value!r} on contact {contact_id} lost"


class TestConvergence(TestCase):
    def test_random_interleavings_converge(self):
        run_state_machine_as_test(
            SyncMachine,
            settings=settings(
                # CONVERGENCE_EXAMPLES=1000 for a deeper search than the suite's default.
                max_examples=int(os.environ.get("CONVERGENCE_EXAMPLES", 60)),
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )


class TestConvergenceWithValidation(TestCase):
    def test_app_restore_refuses_an_email_now_used_by_another_contact(self):
        tenant = tenant_create(slug="restore-check")
        first = contact_create(tenant=tenant, values={"email": "same@example.com"})
        contact_delete(contact=first)
        contact_create(tenant=tenant, values={"email": "same@example.com"})
        with self.assertRaises(ValidationError):
            contact_restore(contact=first)
