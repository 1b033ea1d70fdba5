"""The demo: tenant ``demo`` connected to a sandbox HubSpot portal and Pipedrive company, seeded and synced.

Everything goes through the product's own services and the CRMs' HTTP APIs (the sandbox's control API
stands in for a person editing in the CRM), so what the demo shows is what production does.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import connections
from django.db.models import Count, Sum

from syncapp.engine import FIELDS
from syncapp.exceptions import WebhooksNotSupportedError
from syncapp.models import Contact, CrmConnection, OutboxEntry, SyncConflict, SyncRun, Tenant, WebhookEvent
from syncapp.sandbox.client import SandboxClient, sandbox_api_allow
from syncapp.services.connections import connection_create
from syncapp.services.contacts import contact_create, contact_delete, contact_update
from syncapp.services.pronouns import connection_setup_pronouns
from syncapp.services.sync import connection_sync
from syncapp.services.tenants import tenant_create
from syncapp.services.webhook_setup import connection_setup_webhooks
from syncapp.tasks import connection_poll, webhook_events_process

logger = logging.getLogger(__name__)

TENANT = "demo"
PROVIDERS = ("hubspot", "pipedrive")
FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia", "Edsger"]
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Perlman"]
TITLES = ["Engineer", "CTO", "Designer", "Founder", "Analyst", "Product Manager", ""]
PRONOUNS = ["she/her", "he/him", "they/them", ""]
QUIET_ROUNDS_MAX = 8


def person(index: int, *, side: str) -> dict[str, str]:
    """Contact ``index`` as ``side`` holds it; some overlapping contacts differ between the sides."""
    values = {
        "email": f"person{index:05d}@example.com",
        "first_name": FIRST[index % len(FIRST)],
        "last_name": LAST[index % len(LAST)],
        "phone": f"+1 555 01{index % 100:02d}" if index % 3 else "",
        "job_title": TITLES[index % len(TITLES)],
        "pronouns": PRONOUNS[index % len(PRONOUNS)],
    }
    if side != "app" and index % 5 == 0:
        values["job_title"] = f"Head of {FIRST[index % len(FIRST)]} ({side})"  # a conflict on first contact
    if side == "app" and index % 4 == 1:
        values["phone"] = ""  # filled from the CRM
    return values


def side_ranges(count: int) -> dict[str, range]:
    """Which contacts each side starts with: every pair of sides overlaps, and some contacts are on all three."""
    return {
        "app": range(0, count),
        "hubspot": range(count // 2, count + count // 2),
        "pipedrive": range(count // 4, count // 4 + count),
    }


@dataclass
class DemoConnection:
    connection: CrmConnection
    provider: str
    account_id: str


@dataclass
class Demo:
    sandbox: SandboxClient
    app_url: str
    contacts: int = 24
    password: str = field(default_factory=lambda: secrets.token_urlsafe(9))
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    tenant: Tenant | None = None
    linked: list[DemoConnection] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    notes: list[str] = field(default_factory=list)

    # Setting up ---------------------------------------------------------------------------

    def reset_tenant(self) -> None:
        Tenant.objects.filter(slug=TENANT).delete()
        # The demo owns its user: a user left by an earlier run gets this run's tenant and password.
        self.tenant = tenant_create(
            slug=TENANT,
            name="Demo Inc.",
            username=TENANT,
            password=self.password,
            add_existing_user=True,
            reset_password=True,
        )
        # The demo user may also use the admin; a real tenant member need not.
        get_user_model().objects.filter(username=TENANT).update(is_staff=True, is_superuser=True)
        # The app verifies HubSpot's signatures with the secret the sandbox portal signs with.
        settings.HUBSPOT_WEBHOOK_SECRET = self.webhook_secret

    def connect(self, *, rate_limits: bool = True) -> None:
        for provider in PROVIDERS:
            account = self.sandbox.account_create(
                provider,
                rate_limits=rate_limits,
                webhook_target=self.app_url,
                webhooks={"secret": self.webhook_secret},
            )
            sandbox_api_allow(account["base_url"])
            connection = connection_create(
                tenant=self.tenant,
                provider=provider,
                account_id=account["account_id"],
                credentials={"access_token": account["token"]},
                api_base_url=account["base_url"],
            )
            self.linked.append(DemoConnection(connection, provider, account["account_id"]))
            setup = connection_setup_pronouns(connection=connection)
            self.notes.append(f"{provider}: {setup.message}")
            # A CRM that delivers to one app-wide URL (HubSpot) has its target from webhook_target above.
            with contextlib.suppress(WebhooksNotSupportedError):
                connection_setup_webhooks(connection=connection, base_url=self.app_url)

    def seed(self) -> None:
        ranges = side_ranges(self.contacts)
        for index in ranges["app"]:
            contact_create(tenant=self.tenant, values=person(index, side="app"))
        for item in self.linked:
            records = [person(index, side=item.provider) for index in ranges[item.provider]]
            self.sandbox.records_load(item.provider, item.account_id, records)

    # Syncing ------------------------------------------------------------------------------

    def initial_sync(self) -> list[SyncRun]:
        return [connection_sync(connection=item.connection, full=True) for item in self.linked]

    def quiesce(self) -> int:
        """Deliver webhooks, process the inbox and sync every connection until a whole round writes nothing."""
        for rounds in range(1, QUIET_ROUNDS_MAX + 1):
            self.sandbox.webhooks_wait(timeout=30)
            wrote = 0
            for item in self.linked:
                webhook_events_process(item.connection.pk)
                run = connection_sync(connection=item.connection)
                wrote += run.created + run.updated + run.deleted
            pending = OutboxEntry.objects.filter(connection__tenant=self.tenant).exists()
            unprocessed = WebhookEvent.objects.filter(
                connection__tenant=self.tenant, status=WebhookEvent.Status.PENDING
            ).exists()
            if not wrote and not pending and not unprocessed:
                return rounds
        return QUIET_ROUNDS_MAX

    def edit_every_side(self) -> dict:
        """After the first sync: an edit on each side, a true conflict and a delete."""
        hubspot, pipedrive = self.linked
        hub_records = {r["email"]: r for r in self.sandbox.records(hubspot.provider, hubspot.account_id)}
        pd_records = {r["email"]: r for r in self.sandbox.records(pipedrive.provider, pipedrive.account_id)}
        emails = sorted(set(hub_records) & set(pd_records))
        app_edit, hub_edit, pd_edit, conflict, crm_deleted, app_deleted = emails[:6]
        contact_update(
            contact=Contact.objects.get(tenant=self.tenant, email=app_edit), values={"job_title": "Edited in the app"}
        )
        self.sandbox.record_update(
            hubspot.provider, hubspot.account_id, hub_records[hub_edit]["id"], {"phone": "+1 555 7777"}
        )
        self.sandbox.record_update(
            pipedrive.provider, pipedrive.account_id, pd_records[pd_edit]["id"], {"pronouns": "xe/xem"}
        )
        contact_update(contact=Contact.objects.get(tenant=self.tenant, email=conflict), values={"last_name": "AppSide"})
        self.sandbox.record_update(
            hubspot.provider, hubspot.account_id, hub_records[conflict]["id"], {"last_name": "CrmSide"}
        )
        self.sandbox.record_delete(pipedrive.provider, pipedrive.account_id, pd_records[crm_deleted]["id"])
        contact_delete(contact=Contact.objects.get(tenant=self.tenant, email=app_deleted))
        # Pipedrive is polled: one poll, as the schedule would run it.
        connection_poll(pipedrive.connection.pk)
        return {"deleted": [crm_deleted, app_deleted], "expect": {conflict: {"last_name": "CrmSide"}}}

    def random_crm_edit(self) -> str:
        """One edit a CRM user might make (used while serving, so webhooks and polls keep arriving)."""
        item = self.rng.choice(self.linked)
        records = self.sandbox.records(item.provider, item.account_id)
        if not records:
            return ""
        record = self.rng.choice(records)
        title = self.rng.choice([t for t in TITLES if t])
        self.sandbox.record_update(item.provider, item.account_id, record["id"], {"job_title": title})
        return f"{item.provider}: set job_title of {record['email']} to {title!r}"

    def random_app_edit(self) -> str:
        contact = self.rng.choice(list(Contact.objects.filter(tenant=self.tenant, deleted_at__isnull=True)))
        pronouns = self.rng.choice([p for p in PRONOUNS if p])
        contact_update(contact=contact, values={"pronouns": pronouns})
        return f"app: set pronouns of {contact.email} to {pronouns!r}"

    # Checking -------------------------------------------------------------------------------

    def disagreements(self, expect: dict | None = None, deleted: list[str] = ()) -> list[str]:
        """Where any CRM differs from the app's live contacts (fields the CRM has), or an expectation fails."""
        app = {
            c.email: c.to_record().as_dict()
            for c in Contact.objects.filter(tenant=self.tenant, deleted_at__isnull=True)
        }
        problems = [f"app: {email} should be deleted" for email in deleted if email in app]
        for item in self.linked:
            skipped = set(
                filter(
                    None,
                    (item.connection.runs.order_by("-pk").values_list("skipped_fields", flat=True).first() or "").split(
                        ", "
                    ),
                )
            )
            crm = {r["email"].lower(): r for r in self.sandbox.records(item.provider, item.account_id) if r["email"]}
            for email in sorted(set(app) - set(crm)):
                problems.append(f"{item.provider}: {email} is missing")
            for email in sorted(set(crm) - set(app)):
                problems.append(f"{item.provider}: {email} is in the CRM but not in the app")
            for email in sorted(set(app) & set(crm)):
                for name in FIELDS:
                    if name not in skipped and (app[email][name] or "") != (crm[email][name] or ""):
                        problems.append(
                            f"{item.provider}: {email} {name} is {crm[email][name]!r}, app {app[email][name]!r}"
                        )
        for email, values in (expect or {}).items():
            for name, value in values.items():
                if app.get(email, {}).get(name) != value:
                    problems.append(
                        f"app: {email} {name} should be {value!r} (the CRM won), is {app.get(email, {}).get(name)!r}"
                    )
        return problems

    def summary(self, problems: list[str], *, rounds: int) -> dict:
        runs = SyncRun.objects.filter(connection__tenant=self.tenant)
        sides = {"app": Contact.objects.filter(tenant=self.tenant, deleted_at__isnull=True).count()}
        for item in self.linked:
            sides[item.provider] = len(self.sandbox.records(item.provider, item.account_id))
        endpoints: Counter[str] = Counter()
        for account in self.sandbox.accounts():
            if (account["provider"], account["account_id"]) in {(i.provider, i.account_id) for i in self.linked}:
                endpoints.update({f"{account['provider']} {k}": v for k, v in account["calls"].items()})
        return {
            "agree": not problems,
            "disagreements": problems,
            "contacts": sides,
            "conflicts": SyncConflict.objects.filter(link__connection__tenant=self.tenant).count(),
            "runs": dict(runs.values_list("status").annotate(n=Count("pk"))),
            "webhook_events": {
                f"{provider} {status}": n
                for provider, status, n in WebhookEvent.objects.filter(connection__tenant=self.tenant)
                .values_list("provider", "status")
                .annotate(n=Count("pk"))
            },
            "webhook_deliveries": self.sandbox.webhooks(),
            "api_calls": runs.aggregate(total=Sum("api_calls"))["total"] or 0,
            "api_calls_by_endpoint": dict(sorted(endpoints.items())),
            "quiet_after_rounds": rounds,
            "notes": self.notes,
        }


class AppServer:
    """The web app on a loopback port, in a thread (webhooks arrive here; people browse it)."""

    def __init__(self, host: str, port: int):
        self.httpd = ThreadedWSGIServer((host, port), _QuietHandler)
        self.httpd.set_app(StaticFilesHandler(get_wsgi_application()))
        self.url = f"http://{host}:{self.httpd.server_address[1]}"

    def start(self) -> AppServer:
        threading.Thread(target=self.httpd.serve_forever, name="demo-web", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        connections.close_all()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        logger.debug("web: " + format, *args)
