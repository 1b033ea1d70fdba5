"""Data model. Every row belongs to one tenant, directly or through its connection, except the
webhook rows that could not be routed to one (kept for operators, never applied)."""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from syncapp import engine
from syncapp.crypto import decrypt_json, encrypt_json
from syncapp.engine import ContactRecord


def default_conflict_strategy() -> str:
    return settings.CONFLICT_RESOLUTION_STRATEGY


class Tenant(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="tenants")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.slug


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique")]

    def __str__(self):
        return f"{self.user} in {self.tenant}"


class Contact(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="contacts")
    email = models.CharField(max_length=254, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=100, blank=True)
    job_title = models.CharField(max_length=200, blank=True)
    pronouns = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # field -> when that value was written, by the app or (for pulled values) by the CRM it came from.
    field_modified_at = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "tenant",
                Lower("email"),
                condition=Q(deleted_at__isnull=True) & ~Q(email=""),
                name="contact_live_email_unique",
            )
        ]
        indexes = [models.Index(fields=["tenant", "email"])]

    def __str__(self):
        return self.email or f"contact {self.pk}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def to_record(self) -> ContactRecord:
        return ContactRecord(
            email=self.email,
            first_name=self.first_name,
            last_name=self.last_name,
            phone=self.phone,
            job_title=self.job_title,
            pronouns=self.pronouns,
        )


class CrmConnection(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ERROR = "error", "Error"
        RATE_LIMITED = "rate_limited", "Rate limited"
        DISCONNECTED = "disconnected", "Disconnected"

    # Connections that still collect app changes (a paused one catches up when resumed).
    LIVE_STATUSES = (Status.ACTIVE, Status.PAUSED, Status.ERROR, Status.RATE_LIMITED)
    # Connections a sync may run for.
    SYNCABLE_STATUSES = (Status.ACTIVE, Status.ERROR, Status.RATE_LIMITED)
    POLL_SCHEDULE_PREFIX = "contactsync-poll-"

    class Strategy(models.TextChoices):
        # The engine's names (engine.STRATEGIES), with the labels pages show.
        CRM_WINS = engine.CRM_WINS, "CRM wins"
        LATEST_WINS = engine.LATEST_WINS, "Latest edit wins"
        MANUAL_REVIEW = engine.MANUAL_REVIEW, "Manual review"
        FIELD_PRIORITY = engine.FIELD_PRIORITY, "Per-field owner"

    class OnCrmDelete(models.TextChoices):
        DELETE_CONTACT = "delete_contact", "Delete the app contact"
        RESTORE_RECORD = "restore_record", "Keep the app contact and restore the CRM record"

    class PronounsState(models.TextChoices):
        UNKNOWN = "unknown", "Not checked"
        MISSING = "missing", "Not configured"
        CONFIGURED = "configured", "Configured"
        FAILED = "failed", "Setup failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="connections")
    provider = models.CharField(max_length=50)
    account_id = models.CharField(max_length=100, help_text="HubSpot portal id or Pipedrive company id.")
    api_base_url = models.URLField(blank=True, help_text="Empty: the provider's public API.")
    credentials_encrypted = models.TextField(blank=True, editable=False)
    webhook_key = models.CharField(max_length=64, unique=True, default=secrets.token_urlsafe, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    status_message = models.TextField(blank=True)
    conflict_strategy = models.CharField(max_length=20, choices=Strategy.choices, default=default_conflict_strategy)
    on_crm_delete = models.CharField(max_length=20, choices=OnCrmDelete.choices, default=OnCrmDelete.DELETE_CONTACT)
    field_priorities = models.JSONField(
        default=dict, blank=True, help_text='For field_priority: {"phone": "app", "email": "crm"}.'
    )
    pronouns_state = models.CharField(max_length=20, choices=PronounsState.choices, default=PronounsState.UNKNOWN)
    pronouns_field_key = models.CharField(max_length=100, blank=True)
    pronouns_message = models.TextField(blank=True)
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per RATE_LIMIT_WINDOW for this account's tier; empty: the default."
    )
    rate_limited_until = models.DateTimeField(null=True, blank=True)
    sync_cursor = models.CharField(max_length=200, blank=True)
    # Where the next scan for CRM deletions starts (CrmAdapter.list_deleted); moves only after a complete scan.
    deletion_cursor = models.TextField(blank=True)
    last_full_sync_at = models.DateTimeField(null=True, blank=True)
    # The full listing in progress, across its slices: the changes cursor taken when it began (empty:
    # none in progress) and the adapter's token for the page it resumes from.
    listing_cursor = models.CharField(max_length=200, blank=True, editable=False)
    listing_page = models.TextField(blank=True, editable=False)
    # Set while a slice of a long sync waits in the queue or runs, so polls do not start a second chain.
    slice_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    lock_owner = models.CharField(max_length=64, blank=True, editable=False)
    lock_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set while a push task waits in the queue, so a burst of edits queues one task.
    push_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "account_id"], name="connection_account_unique"),
        ]

    def __str__(self):
        return f"{self.provider}:{self.account_id} ({self.tenant})"

    @classmethod
    def poll_schedule_name(cls, connection_id: int) -> str:
        """The name of the django-q2 Schedule that polls the connection (the schedule's only link to it)."""
        return f"{cls.POLL_SCHEDULE_PREFIX}{connection_id}"

    @property
    def credentials(self) -> dict:
        return decrypt_json(self.credentials_encrypted)

    @credentials.setter
    def credentials(self, value: dict) -> None:
        self.credentials_encrypted = encrypt_json(value)


class ContactLink(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "In sync"
        PENDING = "pending", "Pending"
        ERROR = "error", "Error"
        CONFLICT = "conflict", "Awaiting review"

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="links")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="links")
    # Null (not "") while the CRM record is still to be created, so the unique constraint allows many.
    remote_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    base = models.JSONField(default=dict, blank=True, help_text="Field values both sides last agreed on.")
    base_deleted = models.BooleanField(default=False)
    remote_version = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OK)
    last_error = models.TextField(blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "remote_id"], name="link_remote_unique"),
            models.UniqueConstraint(fields=["connection", "contact"], name="link_contact_unique"),
        ]

    def __str__(self):
        return f"{self.contact} <-> {self.connection.provider}:{self.remote_id or '(pending)'}"


class SyncConflict(models.Model):
    class Winner(models.TextChoices):
        APP = engine.APP, "App"
        CRM = engine.CRM, "CRM"

    class Resolution(models.TextChoices):
        AUTOMATIC = "automatic", "Resolved by strategy"
        OPEN = "open", "Awaiting review"
        RESTORED = "restored", "Losing value restored"
        PICKED_APP = "picked_app", "App value picked"
        PICKED_CRM = "picked_crm", "CRM value picked"

    link = models.ForeignKey(ContactLink, on_delete=models.CASCADE, related_name="conflicts")
    field = models.CharField(max_length=50)
    local_value = models.TextField(blank=True)
    remote_value = models.TextField(blank=True)
    local_modified_at = models.DateTimeField(null=True, blank=True)
    remote_modified_at = models.DateTimeField(null=True, blank=True)
    strategy = models.CharField(max_length=20, choices=CrmConnection.Strategy.choices)
    winner = models.CharField(max_length=10, choices=Winner.choices, blank=True)
    resolution = models.CharField(max_length=20, choices=Resolution.choices)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["link", "field", "resolution"])]

    def __str__(self):
        return f"{self.field} on {self.link}"

    @property
    def losing_value(self) -> str:
        return self.local_value if self.winner == self.Winner.CRM else self.remote_value


class SyncRun(models.Model):
    class Trigger(models.TextChoices):
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "Incremental"
        WEBHOOK = "webhook", "Webhook"
        PUSH = "push", "Push"
        MANUAL = "manual", "Manual"
        SCHEDULED = "scheduled", "Scheduled"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    conflicts = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    excluded = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(
        default=0, help_text="CRM writes not made yet after a transient error; they wait for the next run."
    )
    api_calls = models.PositiveIntegerField(default=0)
    skipped_fields = models.CharField(
        max_length=200, blank=True, help_text="Fields the CRM account cannot hold yet, left out of this run."
    )
    error = models.TextField(blank=True)
    continues = models.BooleanField(
        default=False,
        help_text="This run read its share of a long listing or of many changes; the next slice continues it.",
    )

    class Meta:
        indexes = [models.Index(fields=["connection", "-started_at"])]

    def __str__(self):
        return f"{self.trigger} run {self.pk} of {self.connection}"


class ListedRecord(models.Model):
    """A CRM record a sliced full listing has read, kept until the listing completes.

    Deletions may be inferred only from a complete listing, so the slices before the last one leave
    here what they saw: the record's id, and the emails it holds while it lives.
    """

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="listed")
    remote_id = models.CharField(max_length=100)
    emails = models.JSONField(default=list)

    def __str__(self):
        return f"{self.remote_id} listed for {self.connection}"


class ExcludedRecord(models.Model):
    """A record the last sync left out (no email, duplicate email, suppressed), listed for operators."""

    class Side(models.TextChoices):
        APP = engine.APP, "App"
        CRM = engine.CRM, "CRM"

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="excluded_records")
    side = models.CharField(max_length=10, choices=Side.choices)

    class Code(models.TextChoices):
        # The engine's exclusion codes (engine.Exclusion), and the app's own refusal.
        NO_EMAIL = engine.Exclusion.NO_EMAIL, "No email address"
        DUPLICATE = engine.Exclusion.DUPLICATE, "Duplicate email in the CRM"
        EMAIL_LINKED = engine.Exclusion.EMAIL_LINKED, "Email linked to another record"
        SECONDARY_EMAIL = engine.Exclusion.SECONDARY_EMAIL, "Email is another record's secondary address"
        REFUSED = "refused", "Refused by the app"
        SUPPRESSED = engine.Exclusion.SUPPRESSED, "Suppressed by a privacy request"

    record_id = models.CharField(max_length=100)
    email = models.CharField(max_length=254, blank=True)
    code = models.CharField(max_length=30, choices=Code.choices)
    reason = models.TextField()
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "side", "record_id"], name="excluded_record_unique")
        ]

    def __str__(self):
        return f"{self.side} {self.record_id}: {self.reason}"


class Suppression(models.Model):
    """A person who must not come back into a tenant's app: a keyed hash of their email, never the email.

    Written by a CRM privacy deletion or an operator; a lift keeps the row (who, when) for the record.
    See syncapp/services/suppressions.py for the hash and its key.
    """

    class Source(models.TextChoices):
        PRIVACY_DELETION = "privacy_deletion", "CRM privacy deletion"
        OPERATOR = "operator", "Operator"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="suppressions")
    email_hash = models.CharField(max_length=64, help_text="HMAC-SHA256 of the normalised email, hex.")
    source = models.CharField(max_length=20, choices=Source.choices)
    provider = models.CharField(max_length=50, blank=True, help_text="The CRM whose privacy deletion wrote it.")
    remote_id = models.CharField(max_length=100, blank=True, help_text="That CRM's id of the deleted record.")
    reason = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email_hash"], condition=Q(lifted_at__isnull=True), name="suppression_active_unique"
            )
        ]
        indexes = [models.Index(fields=["tenant", "email_hash"])]

    def __str__(self):
        return f"suppression {self.pk} in {self.tenant_id}"


class WebhookEvent(models.Model):
    """The inbox: a verified delivery, stored before it is answered and processed by a task."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    provider = models.CharField(max_length=50)
    connection = models.ForeignKey(
        CrmConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_events"
    )
    dedupe_key = models.CharField(max_length=255, unique=True)
    body = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.provider} event {self.dedupe_key}"


class WebhookRejection(models.Model):
    """How many deliveries were refused, per provider, answer and day (bounded, unlike one row each)."""

    provider = models.CharField(max_length=50)
    status_code = models.PositiveSmallIntegerField()
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)
    last_reason = models.TextField(blank=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "status_code", "day"], name="webhook_rejection_unique")
        ]

    def __str__(self):
        return f"{self.count} x {self.status_code} from {self.provider} on {self.day}"


class OutboxEntry(models.Model):
    """An app-side contact change still to reach one connection; written with the change itself."""

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="outbox")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="outbox")
    created_at = models.DateTimeField(auto_now_add=True)
    # Failed pushes so far; only grows the wait before the next try, an entry is never dropped.
    attempts = models.PositiveIntegerField(default=0)
    # How often the CRM refused this contact with a retryable per-record error; capped by MAX_RETRY_ATTEMPTS.
    record_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "outbox entries"
        indexes = [models.Index(fields=["connection", "id"])]

    def __str__(self):
        return f"push {self.contact} to {self.connection}"
