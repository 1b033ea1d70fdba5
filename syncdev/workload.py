"""The soak's tenants and the edits made to them on every side, with the ledger the checker judges.

App edits go through the product's services (as its pages and the CSV import do); CRM edits go through
the sandbox's control API, as a CRM user's would. Emails are who a person is, here and in the checks,
so they are never edited; every other field is.
"""

from __future__ import annotations

import contextlib
import io
import random
import threading
import time
from dataclasses import dataclass, field

from django.db import connections

from syncapp.exceptions import SyncAlreadyRunningError, ValidationError, WebhooksNotSupportedError
from syncapp.models import Contact, CrmConnection, SyncRun, Tenant
from syncapp.sandbox.client import SandboxClient, SandboxControlError, sandbox_api_allow
from syncapp.services.connections import connection_create
from syncapp.services.contacts import contact_create, contact_delete, contact_restore, contact_update
from syncapp.services.contacts_csv import HEADER, contacts_import_csv
from syncapp.services.pronouns import connection_setup_pronouns
from syncapp.services.sync import connection_sync, connection_sync_queue
from syncapp.services.webhook_setup import connection_setup_webhooks
from syncdev.checker import LIVE, Edit, Write

TENANT_PREFIX = "soak-"
ACCOUNT_OPTIONS = {"hubspot": {"tier": "free"}, "pipedrive": {"plan": "premium", "seats": 5}}
EDITED = ("first_name", "last_name", "phone", "job_title", "pronouns")
CLEARABLE = ("phone", "job_title", "pronouns")
# Seeded CRM records are an hour old, as existing data is.
SEED_AGE = 3600
SEED_CHUNK = 5000


def sizes(count: int, smallest: int, largest: int) -> list[int]:
    """``count`` tenant sizes spread geometrically from ``smallest`` to ``largest``."""
    if count == 1:
        return [largest]
    return [round(smallest * (largest / smallest) ** (i / (count - 1))) for i in range(count)]


def person_values(tenant: str, index: int) -> dict[str, str]:
    # No spaces in names: Pipedrive keeps one "name" and splits it at the first space.
    return {
        "email": f"p{index}.{tenant}@soak.example.com",
        "first_name": f"F{index}",
        "last_name": f"L{index}",
        "phone": f"+1 555 {index:07d}",
        "job_title": f"Title {index % 7}",
        "pronouns": "they/them",
    }


@dataclass
class Account:
    provider: str
    account_id: str
    connection: CrmConnection

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.account_id}"


@dataclass
class Person:
    email: str
    touched: float = 0.0
    live: bool = True
    # Where the workload itself deleted the person last: "app", or (account key, record id) in a CRM.
    deleted_at: str | tuple[str, str] | None = None


@dataclass
class SoakTenant:
    tenant: Tenant
    accounts: list[Account]
    people: list[Person]
    next_index: int


@dataclass
class Workload:
    sandbox: SandboxClient
    app_url: str
    rng: random.Random
    spacing: float
    tenants: list[SoakTenant] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    done: dict[str, int] = field(default_factory=dict)
    _ids: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)
    _manual: threading.Thread | None = None
    _counter: int = 0
    _ready: list[SoakTenant] = field(default_factory=list)
    _ready_checked: float = 0.0

    # Setting up -------------------------------------------------------------------------------------

    def seed(self, *, count: int, smallest: int, largest: int, webhook_secret: str, progress) -> None:
        Tenant.objects.filter(slug__startswith=TENANT_PREFIX).delete()
        for number, size in enumerate(sizes(count, smallest, largest)):
            slug = f"{TENANT_PREFIX}{number}"
            progress(f"  tenant {slug}: {size} people")
            self.tenants.append(self._seed_tenant(slug, size, webhook_secret))

    def _seed_tenant(self, slug: str, size: int, webhook_secret: str) -> SoakTenant:
        tenant = Tenant.objects.create(slug=slug, name=slug)
        # Every pair of sides overlaps and some people are on all three; overlapping values agree.
        ranges = {
            "app": range(0, max(1, size * 6 // 10)),
            "hubspot": range(size * 3 // 10, max(size * 3 // 10 + 1, size * 9 // 10)),
            "pipedrive": range(size // 2, size),
        }
        Contact.objects.bulk_create(
            [Contact(tenant=tenant, **person_values(slug, i)) for i in ranges["app"]], batch_size=2000
        )
        accounts = []
        for provider in ("hubspot", "pipedrive"):
            description = self.sandbox.account_create(
                provider,
                rate_limits=True,
                webhook_target=self.app_url,
                webhooks={"secret": webhook_secret},
                **ACCOUNT_OPTIONS[provider],
            )
            sandbox_api_allow(description["base_url"])
            connection = connection_create(
                tenant=tenant,
                provider=provider,
                account_id=description["account_id"],
                credentials={"access_token": description["token"]},
                api_base_url=description["base_url"],
            )
            profile = description["api_profile"]
            connection.rate_limit = round(profile["requests_per_second"] * profile["window_ms"] / 1000)
            connection.save(update_fields=["rate_limit"])
            connection_setup_pronouns(connection=connection)
            # HubSpot delivers to the app-wide URL, set above as the account's webhook_target.
            with contextlib.suppress(WebhooksNotSupportedError):
                connection_setup_webhooks(connection=connection, base_url=self.app_url)
            account = Account(provider, description["account_id"], connection)
            for start in range(ranges[provider].start, ranges[provider].stop, SEED_CHUNK):
                chunk = range(start, min(start + SEED_CHUNK, ranges[provider].stop))
                records = [person_values(slug, i) for i in chunk]
                self.sandbox.records_load(provider, account.account_id, records, age=SEED_AGE)
                self.writes += [Write(account.key, r["email"], "create", 0.0, "user") for r in records]
            accounts.append(account)
        people = [Person(person_values(slug, i)["email"]) for i in range(size)]
        for i in range(size):
            self._record(slug, "seed", person_values(slug, i), at=0.0, live="1")
        return SoakTenant(tenant, accounts, people, next_index=size)

    # The ledger ---------------------------------------------------------------------------------------

    def _record(self, tenant: str, side: str, values: dict, *, at: float | None = None, live: str | None = None):
        at = time.time() if at is None else at
        email = values.get("email")
        for name, value in values.items():
            if name != "email":
                self.edits.append(Edit(tenant, email, name, value, at, side))
        if live is not None:
            self.edits.append(Edit(tenant, email, LIVE, live, at, side))

    def _count(self, action: str) -> None:
        self.done[action] = self.done.get(action, 0) + 1

    def _new_value(self, name: str) -> str:
        self._counter += 1
        if name in CLEARABLE and self.rng.random() < 0.1:
            return ""
        n = self._counter
        return {
            "first_name": f"Fe{n}",
            "last_name": f"Le{n}",
            "phone": f"+1 556 {n:07d}",
            "job_title": f"Job {n}",
            "pronouns": f"they/{n}",
        }[name]

    # Choosing -----------------------------------------------------------------------------------------

    def ready(self) -> list[SoakTenant]:
        """Tenants whose connections have all finished their initial sync.

        Before it, the sides have never agreed on a value: a full sync meets two values without a common
        base and lets the CRM's win, so an edit made then is a first-contact conflict, not one to keep.
        """
        if len(self._ready) < len(self.tenants) and time.time() - self._ready_checked > 5:
            self._ready_checked = time.time()
            waiting = set(
                CrmConnection.objects.filter(
                    tenant__in=[soak.tenant for soak in self.tenants], last_full_sync_at__isnull=True
                ).values_list("tenant_id", flat=True)
            )
            self._ready = [soak for soak in self.tenants if soak.tenant.pk not in waiting]
        return self._ready

    def _tenant(self) -> SoakTenant | None:
        return self.rng.choice(self.ready()) if self.ready() else None

    def _pick(self, *, live: bool = True, deleted_at=None) -> tuple[SoakTenant, Person] | None:
        """A person nobody has touched for ``spacing`` seconds, in the state asked for."""
        now = time.time()
        for _ in range(20):
            soak = self._tenant()
            if soak is None:
                return None
            person = self.rng.choice(soak.people)
            if now - person.touched < self.spacing or person.live != live:
                continue
            if deleted_at is not None and not deleted_at(person.deleted_at):
                continue
            return soak, person
        return None

    def _record_id(self, account: Account, email: str) -> str | None:
        """The live record of ``email`` in the account, from a listing at most ten seconds old."""
        fetched, ids = self._ids.get(account.key, (0.0, {}))
        if email not in ids and time.time() - fetched > 10:
            records = self.sandbox.records(account.provider, account.account_id)
            ids = {r["email"].lower(): r["id"] for r in records if r["email"]}
            self._ids[account.key] = (time.time(), ids)
        return ids.get(email)

    def _contact(self, soak: SoakTenant, person: Person) -> Contact | None:
        return Contact.objects.filter(tenant=soak.tenant, email=person.email, deleted_at__isnull=True).first()

    # Actions ------------------------------------------------------------------------------------------

    def step(self) -> None:
        actions = [
            (self.app_edit, 24),
            (self.crm_edit, 24),
            (self.conflict, 8),
            (self.app_create, 5),
            (self.crm_create, 5),
            (self.csv_import, 5),
            (self.app_delete, 4),
            (self.crm_delete, 4),
            (self.app_restore, 3),
            (self.crm_restore, 3),
            (self.manual_sync_twice, 3),
        ]
        action = self.rng.choices([a for a, _ in actions], weights=[w for _, w in actions])[0]
        action()

    def app_edit(self, picked=None) -> bool:
        picked = picked or self._pick()
        contact = picked and self._contact(*picked)
        if contact is None:
            return False
        name = self.rng.choice(EDITED)
        values = {name: self._new_value(name)}
        contact_update(contact=contact, values=values)
        self._record(picked[0].tenant.slug, "app", {"email": picked[1].email, **values})
        picked[1].touched = time.time()
        self._count("app edit")
        return True

    def crm_edit(self, picked=None, name: str | None = None) -> bool:
        picked = picked or self._pick()
        if picked is None:
            return False
        soak, person = picked
        account = self.rng.choice(soak.accounts)
        record_id = self._record_id(account, person.email)
        if record_id is None:
            return False
        name = name or self.rng.choice(EDITED)
        values = {name: self._new_value(name)}
        try:
            self.sandbox.record_update(account.provider, account.account_id, record_id, values)
        except SandboxControlError:
            return False  # deleted or merged since the listing
        self._record(soak.tenant.slug, account.key, {"email": person.email, **values})
        person.touched = time.time()
        self._count("crm edit")
        return True

    def conflict(self) -> None:
        """The same field edited in the app and in a CRM within a second: a true conflict."""
        picked = self._pick()
        if picked is None or self._contact(*picked) is None:
            return
        contact = self._contact(*picked)
        name = self.rng.choice(EDITED)
        app_value = self._new_value(name)
        contact_update(contact=contact, values={name: app_value})
        self._record(picked[0].tenant.slug, "app", {"email": picked[1].email, name: app_value})
        picked[1].touched = time.time()
        if self.crm_edit(picked, name=name):
            self._count("conflict")

    def _new_person(self, soak: SoakTenant) -> tuple[Person, dict]:
        values = person_values(soak.tenant.slug, soak.next_index)
        soak.next_index += 1
        person = Person(values["email"], touched=time.time())
        soak.people.append(person)
        return person, values

    def app_create(self) -> None:
        soak = self._tenant()
        if soak is None:
            return
        person, values = self._new_person(soak)
        contact_create(tenant=soak.tenant, values=values)
        self._record(soak.tenant.slug, "app", values, live="1")
        self._count("app create")

    def crm_create(self) -> None:
        soak = self._tenant()
        if soak is None:
            return
        account = self.rng.choice(soak.accounts)
        person, values = self._new_person(soak)
        self.sandbox.record_create(account.provider, account.account_id, values)
        now = time.time()
        self._record(soak.tenant.slug, account.key, values, at=now, live="1")
        self.writes.append(Write(account.key, person.email, "create", now, "user"))
        self._count("crm create")

    def csv_import(self) -> None:
        """A CSV of two updates (blank cells leave values alone) and one new person."""
        soak = self._tenant()
        if soak is None:
            return
        rows = []
        for _ in range(2):
            picked = self._pick()
            if picked is None or picked[0] is not soak or self._contact(*picked) is None:
                continue
            name = self.rng.choice(EDITED)
            value = self._new_value(name) or "x"
            rows.append({"email": picked[1].email, name: value})
            picked[1].touched = time.time()
        person, values = self._new_person(soak)
        rows.append(values)
        text = ",".join(HEADER) + "\n" + "".join(",".join(row.get(n, "") for n in HEADER) + "\n" for row in rows)
        report = contacts_import_csv(tenant=soak.tenant, stream=io.BytesIO(text.encode()))
        if report.errors:
            raise RuntimeError(f"The soak's CSV import was refused: {report.errors}")
        for row in rows:
            self._record(soak.tenant.slug, "app", row, live="1" if row is values else None)
        self._count("csv import")

    def app_delete(self) -> None:
        picked = self._pick()
        contact = picked and self._contact(*picked)
        if contact is None:
            return
        contact_delete(contact=contact)
        self._deleted(picked, "app", "app")

    def crm_delete(self) -> None:
        picked = self._pick()
        if picked is None:
            return
        account = self.rng.choice(picked[0].accounts)
        record_id = self._record_id(account, picked[1].email)
        if record_id is None:
            return
        try:
            self.sandbox.record_delete(account.provider, account.account_id, record_id)
        except SandboxControlError:
            return
        self.writes.append(Write(account.key, picked[1].email, "delete", time.time(), "user"))
        self._deleted(picked, account.key, (account.key, record_id))

    def _deleted(self, picked, side: str, where) -> None:
        soak, person = picked
        self._record(soak.tenant.slug, side, {"email": person.email}, live="0")
        person.live, person.deleted_at, person.touched = False, where, time.time()
        self._count(f"{'app' if side == 'app' else 'crm'} delete")

    def app_restore(self) -> None:
        picked = self._pick(live=False, deleted_at=lambda where: where == "app")
        if picked is None:
            return
        soak, person = picked
        contact = Contact.objects.filter(tenant=soak.tenant, email=person.email, deleted_at__isnull=False).first()
        if contact is None:
            return
        try:
            contact_restore(contact=contact)
        except ValidationError:
            return
        self._restored(picked, "app")

    def crm_restore(self) -> None:
        """A HubSpot user restores a record they deleted (HubSpot refuses when the email lives elsewhere)."""
        picked = self._pick(live=False, deleted_at=lambda where: isinstance(where, tuple) and "hubspot" in where[0])
        if picked is None:
            return
        key, record_id = picked[1].deleted_at
        provider, account_id = key.split(":")
        try:
            self.sandbox.record_restore(provider, account_id, record_id)
        except SandboxControlError:
            return
        self.writes.append(Write(key, picked[1].email, "restore", time.time(), "user"))
        self._restored(picked, key)

    def _restored(self, picked, side: str) -> None:
        soak, person = picked
        self._record(soak.tenant.slug, side, {"email": person.email}, live="1")
        person.live, person.deleted_at, person.touched = True, None, time.time()
        self._count(f"{'app' if side == 'app' else 'crm'} restore")

    def manual_sync_twice(self) -> None:
        """ "Sync now" from two places at once: a queued task (some worker) and this process."""
        if self._manual is not None and self._manual.is_alive():
            return
        account = self.rng.choice(self.rng.choice(self.tenants).accounts)
        connection_sync_queue(connection=account.connection)
        self._manual = threading.Thread(target=self._sync_here, args=(account.connection.pk,), daemon=True)
        self._manual.start()
        self._count("manual sync twice")

    def _sync_here(self, connection_id: int) -> None:
        try:
            connection_sync(connection=CrmConnection.objects.get(pk=connection_id), trigger=SyncRun.Trigger.MANUAL)
        except SyncAlreadyRunningError:
            self._count("manual sync refused (already running)")
        except Exception as exc:  # noqa: BLE001 - a failed run is the sync's to report; the checks judge the end
            self._count(f"manual sync failed ({type(exc).__name__})")
        finally:
            connections.close_all()

    def wait(self) -> None:
        if self._manual is not None:
            self._manual.join()
