from django.core.management.base import BaseCommand, CommandError

from syncapp.engine import normalize_email
from syncapp.management.lookups import tenant_or_error
from syncapp.models import Suppression
from syncapp.selectors.suppressions import suppression_list
from syncapp.services.suppressions import person_forget, suppression_lift

ACTOR = "manage.py suppression"


class Command(BaseCommand):
    help = (
        "The suppression list: people a privacy request keeps out of a tenant's app. Only a keyed hash of "
        "each email is stored, so `lift` and `add` take the address and hash it."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, help="What to do (ACTION -h for its options).")
        listing = actions.add_parser("list", help="List the tenant's active suppressions (no emails: only hashes).")
        listing.add_argument("--tenant", required=True, help="Slug of the tenant.")
        listing.add_argument("--all", action="store_true", help="Include lifted suppressions.")
        lift = actions.add_parser("lift", help="Lift the suppression of an email; the next sync brings it back.")
        lift.add_argument("--tenant", required=True, help="Slug of the tenant.")
        lift.add_argument("--email", required=True, help="The suppressed email address.")
        add = actions.add_parser(
            "add", help="Forget a person: suppress the email, erase its app contacts, archive its CRM records."
        )
        add.add_argument("--tenant", required=True, help="Slug of the tenant.")
        add.add_argument("--email", required=True, help="The person's email address.")
        add.add_argument("--reason", default="", help="Why (a ticket number, say); kept with the suppression.")

    def handle(self, *args, action, tenant, **options):
        tenant = tenant_or_error(tenant)
        if action == "list":
            self._list(tenant, include_lifted=options["all"])
            return
        email = normalize_email(options["email"])
        if not email:
            raise CommandError("--email is empty.")
        if action == "lift":
            if not suppression_lift(tenant=tenant, email=email, by=ACTOR):
                raise CommandError(f"No active suppression of that email in tenant {tenant.slug}.")
            self.stdout.write(self.style.SUCCESS("Lifted; the next sync brings the person's CRM records back."))
            return
        erased = person_forget(
            tenant=tenant, emails=[email], source=Suppression.Source.OPERATOR, reason=options["reason"], by=ACTOR
        )
        self.stdout.write(self.style.SUCCESS(f"Suppressed; {erased} app contact(s) erased."))

    def _list(self, tenant, *, include_lifted):
        rows = suppression_list(tenant=tenant, include_lifted=include_lifted)
        for row in rows:
            origin = row.get_source_display() + (f" ({row.provider} record {row.remote_id})" if row.remote_id else "")
            lifted = f", lifted {row.lifted_at:%Y-%m-%d %H:%M} by {row.lifted_by}" if row.lifted_at else ""
            reason = f": {row.reason}" if row.reason else ""
            self.stdout.write(
                f"{row.pk}\t{row.created_at:%Y-%m-%d %H:%M}\t{origin}\t{row.email_hash[:16]}{lifted}{reason}"
            )
        if not rows:
            self.stdout.write("No suppressions.")
