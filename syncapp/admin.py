"""Admin for every model: what operators look at, and actions that act through services and tasks.

Writes go through the services (contacts reach the outbox, pausing moves the poll schedule); the
sync state the engine keeps (links, conflicts, runs, inbox, outbox) is read-only here. Credentials
are never shown.
"""

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.text import capfirst

from syncapp.engine import FIELDS
from syncapp.exceptions import ConnectionInactiveError, ValidationError
from syncapp.models import (
    Contact,
    ContactLink,
    CrmConnection,
    ExcludedRecord,
    Membership,
    OutboxEntry,
    Suppression,
    SyncConflict,
    SyncRun,
    Tenant,
    WebhookEvent,
    WebhookRejection,
)
from syncapp.selectors.contacts import contact_search_query
from syncapp.services.conflicts import conflict_acknowledge, conflict_pick, conflict_restore
from syncapp.services.connections import (
    api_base_validate,
    conflict_policy_validate,
    connection_delete,
    connection_pause,
    connection_resume,
)
from syncapp.services.contacts import contact_create, contact_delete, contact_update, contact_validate
from syncapp.services.outbox import outbox_enqueue_links
from syncapp.services.suppressions import suppressions_lift
from syncapp.services.sync import connection_sync_queue
from syncapp.services.webhooks import webhook_events_retry


def _change_link(obj, text=None):
    """Return a link to ``obj``'s admin change page, or "-" for None."""
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def _changelist_link(model, text, **filters):
    """Return a link to ``model``'s changelist filtered by ``filters`` (lookup=value)."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), text)


def _pretty_json(value):
    """Return ``value`` (data, or a JSON string) indented in a <pre>, escaped; text that is not JSON as is."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return format_html("<pre>{}</pre>", value)
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def _report_errors(modeladmin, request, errors: list[str]) -> None:
    for error in errors[:10]:
        modeladmin.message_user(request, error, messages.ERROR)
    if len(errors) > 10:
        modeladmin.message_user(request, f"... and {len(errors) - 10} more errors.", messages.ERROR)


class SyncStateAdmin(admin.ModelAdmin):
    """State the engine keeps: viewed here, changed only by syncs and the actions that call services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at", "contacts_link", "connections_link"]
    search_fields = ["slug", "name"]
    date_hierarchy = "created_at"
    inlines = [MembershipInline]

    @admin.display(description="Contacts")
    def contacts_link(self, obj):
        return _changelist_link(Contact, "contacts", tenant__id__exact=obj.pk)

    @admin.display(description="Connections")
    def connections_link(self, obj):
        return _changelist_link(CrmConnection, "connections", tenant__id__exact=obj.pk)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug", "tenant__name"]
    list_select_related = ["user", "tenant"]
    raw_id_fields = ["user"]


class ContactAdminForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = ["tenant", *FIELDS]

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant and not self.errors:
            try:
                values = contact_validate(
                    tenant_id=tenant.pk,
                    values={name: cleaned.get(name) or "" for name in FIELDS},
                    contact_id=self.instance.pk,
                )
            except ValidationError as exc:
                raise forms.ValidationError(str(exc)) from exc
            cleaned.update(values)
        return cleaned


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    """Edits go through the contact services, so they reach the CRMs like any app edit; deletes are soft."""

    list_display = ["email", "first_name", "last_name", "tenant", "updated_at", "deleted_at"]
    list_filter = ["tenant", ("deleted_at", admin.EmptyFieldListFilter)]
    list_select_related = ["tenant"]
    search_fields = ["email", "first_name", "last_name", "phone"]
    date_hierarchy = "updated_at"
    form = ContactAdminForm
    fields = ["tenant", *FIELDS, "deleted_at", "crm_links", "field_times"]
    readonly_fields = ["deleted_at", "crm_links", "field_times"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant"] if obj else self.readonly_fields

    @admin.display(description="CRM links")
    def crm_links(self, obj):
        if not obj.pk:
            return "-"
        links = obj.links.select_related("connection__tenant")
        return format_html_join(mark_safe("<br>"), "{}", ((_change_link(link),) for link in links)) or "-"

    @admin.display(description="Field values written at")
    def field_times(self, obj):
        return _pretty_json(obj.field_modified_at) if obj.pk else "-"

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in FIELDS}
        if change:
            contact_update(contact=Contact.objects.get(pk=obj.pk), values=values)
        else:
            obj.pk = contact_create(tenant=obj.tenant, values=values).pk

    def delete_model(self, request, obj):
        contact_delete(contact=obj)

    def delete_queryset(self, request, queryset):
        for contact in queryset:
            contact_delete(contact=contact)


class CrmConnectionAdminForm(forms.ModelForm):
    api_base_url = forms.URLField(required=False, assume_scheme="https", help_text="Empty: the provider's public API.")

    class Meta:
        model = CrmConnection
        # Never the credentials: they stay encrypted and out of every form and page.
        # Only settings: the status moves through the pause and resume actions and the syncs, the pronouns
        # through their setup, and connections are made on the Connect page or with `connection add`.
        fields = ["api_base_url", "conflict_strategy", "field_priorities", "on_crm_delete", "rate_limit"]

    def clean(self):
        cleaned = super().clean()
        if "conflict_strategy" in cleaned and "field_priorities" in cleaned:
            try:
                conflict_policy_validate(
                    strategy=cleaned["conflict_strategy"], field_priorities=cleaned["field_priorities"]
                )
            except ValidationError as exc:
                self.add_error("field_priorities", str(exc))
        return cleaned

    def clean_api_base_url(self):
        url = self.cleaned_data["api_base_url"]
        if url and "api_base_url" in self.changed_data and not settings.CRM_API_BASE_OVERRIDE:
            # A stored value (Pipedrive's company domain) may stay; a new one is an override.
            raise forms.ValidationError("API base URL overrides are off (CRM_API_BASE_OVERRIDE).")
        try:
            provider = self.instance.provider
            return api_base_validate(url, provider=provider)
        except ValidationError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(CrmConnection)
class CrmConnectionAdmin(admin.ModelAdmin):
    form = CrmConnectionAdminForm
    list_display = [
        "__str__", "provider", "account_id", "tenant_link", "status", "conflict_strategy", "pronouns_state",
        "last_full_sync_at", "runs_link",
    ]  # fmt: skip
    list_filter = ["provider", "status", "conflict_strategy", "pronouns_state", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["account_id", "tenant__slug", "tenant__name", "status_message"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "tenant", "provider", "account_id", "status", "status_message", "rate_limited_until", "pronouns_state",
        "pronouns_field_key", "pronouns_message", "webhook_key", "lock_owner", "lock_expires_at", "push_queued_at",
        "sync_cursor", "deletion_cursor", "last_full_sync_at", "created_at", "updated_at", "related",
    ]  # fmt: skip
    actions = ["sync_now", "pause", "resume"]

    @admin.display(description="Tenant", ordering="tenant__slug")
    def tenant_link(self, obj):
        return _change_link(obj.tenant)

    @admin.display(description="Runs")
    def runs_link(self, obj):
        return _changelist_link(SyncRun, "runs", connection__id__exact=obj.pk)

    @admin.display(description="Related")
    def related(self, obj):
        if not obj.pk:
            return "-"
        pages = [
            (SyncRun, "sync runs"),
            (ContactLink, "contact links"),
            (OutboxEntry, "outbox entries"),
            (WebhookEvent, "webhook events"),
            (ExcludedRecord, "excluded records"),
        ]
        return format_html_join(
            " · ", "{}", ((_changelist_link(model, text, connection__id__exact=obj.pk),) for model, text in pages)
        )

    def has_add_permission(self, request):
        return False  # a connection needs the CRM's credentials: the Connect page or `connection add`

    def delete_model(self, request, obj):
        connection_delete(connection=obj)

    def delete_queryset(self, request, queryset):
        for connection in queryset:
            connection_delete(connection=connection)

    @admin.action(description="Sync selected connections now")
    def sync_now(self, request, queryset):
        queued, skipped = 0, []
        for connection in queryset:
            try:
                connection_sync_queue(connection=connection, trigger=SyncRun.Trigger.MANUAL)
            except ConnectionInactiveError as exc:
                skipped.append(f"{connection}: {exc}")
                continue
            self.log_change(request, connection, "Queued a manual sync.")
            queued += 1
        if queued:
            self.message_user(request, f"Queued a sync of {_count(queued, 'connection')}.", messages.SUCCESS)
        _report_errors(self, request, [f"Not synced: {reason}" for reason in skipped])

    @admin.action(description="Pause selected connections")
    def pause(self, request, queryset):
        self._set_status(request, queryset, connection_pause, "Paused", "already paused or disconnected")

    @admin.action(description="Resume selected connections")
    def resume(self, request, queryset):
        self._set_status(request, queryset, connection_resume, "Resumed", "not paused, left as is")

    def _set_status(self, request, queryset, service, done: str, untouched: str) -> None:
        changed = 0
        for connection in queryset:
            if service(connection=connection):
                self.log_change(request, connection, f"{done}.")
                changed += 1
        self.message_user(request, f"{done} {_count(changed, 'connection')}.", messages.SUCCESS)
        if left := queryset.count() - changed:
            self.message_user(request, f"{_count(left, 'connection')} {untouched}.", messages.INFO)


@admin.register(ContactLink)
class ContactLinkAdmin(SyncStateAdmin):
    list_display = ["__str__", "contact_link", "connection_link", "remote_id", "status", "last_synced_at"]
    list_filter = ["status", "connection__provider", "base_deleted", "connection__tenant"]
    list_select_related = ["contact", "connection__tenant"]
    search_fields = ["remote_id", "contact__email", "last_error"]
    date_hierarchy = "last_synced_at"
    fields = [
        "contact_link", "connection_link", "remote_id", "remote_version", "status", "last_error", "base_pretty",
        "base_deleted", "last_synced_at", "created_at", "conflicts_link",
    ]  # fmt: skip
    readonly_fields = ["contact_link", "connection_link", "base_pretty", "conflicts_link"]
    actions = ["resync"]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Contact", ordering="contact__email")
    def contact_link(self, obj):
        return _change_link(obj.contact)

    @admin.display(description="Connection", ordering="connection")
    def connection_link(self, obj):
        return _change_link(obj.connection)

    @admin.display(description="Base (values both sides last agreed on)")
    def base_pretty(self, obj):
        return _pretty_json(obj.base)

    @admin.display(description="Conflicts")
    def conflicts_link(self, obj):
        return _changelist_link(SyncConflict, "conflicts of this link", link__id__exact=obj.pk)

    @admin.action(description="Resync selected links")
    def resync(self, request, queryset):
        selected = list(queryset.select_related("connection"))
        queued = outbox_enqueue_links(links=selected)
        self.message_user(request, f"Queued {_count(queued, 'link')} for a push to its CRM.", messages.SUCCESS)
        if left := len(selected) - queued:
            self.message_user(
                request, f"{_count(left, 'link')} of a disconnected connection skipped.", messages.WARNING
            )


@admin.register(SyncConflict)
class SyncConflictAdmin(SyncStateAdmin):
    list_display = [
        "field", "link_link", "local_value", "remote_value", "strategy", "winner", "resolution", "created_at",
        "resolved_at",
    ]  # fmt: skip
    list_filter = ["resolution", "strategy", "winner", "field", "link__connection__provider"]
    list_select_related = ["link__contact", "link__connection__tenant"]
    search_fields = ["local_value", "remote_value", "link__contact__email", "link__remote_id"]
    date_hierarchy = "created_at"
    fields = [
        "link_link", "contact_link", "field", "local_value", "local_modified_at", "remote_value", "remote_modified_at",
        "strategy", "winner", "resolution", "resolved_by", "resolved_at", "created_at",
    ]  # fmt: skip
    readonly_fields = ["link_link", "contact_link"]
    actions = ["restore", "acknowledge", "pick_app", "pick_crm"]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Link", ordering="link")
    def link_link(self, obj):
        return _change_link(obj.link)

    @admin.display(description="Contact")
    def contact_link(self, obj):
        return _change_link(obj.link.contact)

    def _resolve(self, request, queryset, service, done: str) -> None:
        count, errors = 0, []
        for conflict in queryset.select_related("link__contact"):
            try:
                service(conflict=conflict, user=request.user)
            except ValidationError as exc:
                errors.append(f"Conflict {conflict.pk} ({conflict}): {exc}")
            else:
                self.log_change(request, conflict, f"{capfirst(done)}.")
                count += 1
        if count:
            self.message_user(request, f"{capfirst(done)}: {_count(count, 'conflict')}.", messages.SUCCESS)
        _report_errors(self, request, errors)

    @admin.action(description="Restore the losing value of selected conflicts")
    def restore(self, request, queryset):
        self._resolve(request, queryset, conflict_restore, "losing value restored")

    @admin.action(description="Mark selected conflicts resolved (keep the strategy's outcome)")
    def acknowledge(self, request, queryset):
        self._resolve(request, queryset, conflict_acknowledge, "marked resolved")

    @admin.action(description="Pick the app value for selected conflicts awaiting review")
    def pick_app(self, request, queryset):
        self._resolve(
            request,
            queryset,
            lambda **kwargs: conflict_pick(winner=SyncConflict.Winner.APP, **kwargs),
            "app value picked",
        )

    @admin.action(description="Pick the CRM value for selected conflicts awaiting review")
    def pick_crm(self, request, queryset):
        self._resolve(
            request,
            queryset,
            lambda **kwargs: conflict_pick(winner=SyncConflict.Winner.CRM, **kwargs),
            "CRM value picked",
        )


@admin.register(SyncRun)
class SyncRunAdmin(SyncStateAdmin):
    list_display = [
        "pk", "connection_link", "trigger", "status", "started_at", "finished_at",
        "created", "updated", "deleted", "conflicts", "errors", "pending", "excluded", "api_calls",
    ]  # fmt: skip
    list_filter = ["status", "trigger", "connection__provider", "connection__tenant"]
    list_select_related = ["connection__tenant"]
    search_fields = ["error", "connection__account_id", "connection__tenant__slug"]
    date_hierarchy = "started_at"
    fields = [
        "connection_link", "trigger", "status", "started_at", "finished_at", "counts", "skipped_fields", "error_pretty",
    ]  # fmt: skip
    readonly_fields = ["connection_link", "counts", "error_pretty"]

    @admin.display(description="Connection", ordering="connection")
    def connection_link(self, obj):
        return _change_link(obj.connection)

    @admin.display(description="Counts")
    def counts(self, obj):
        names = [
            "created",
            "updated",
            "deleted",
            "unchanged",
            "conflicts",
            "errors",
            "pending",
            "excluded",
            "api_calls",
        ]
        return _pretty_json({name: getattr(obj, name) for name in names})

    @admin.display(description="Error")
    def error_pretty(self, obj):
        return format_html("<pre>{}</pre>", obj.error) if obj.error else "-"


@admin.register(ExcludedRecord)
class ExcludedRecordAdmin(SyncStateAdmin):
    list_display = ["record_id", "side", "connection_link", "email", "code", "reason", "seen_at"]
    list_filter = ["side", "code", "connection__provider"]
    list_select_related = ["connection__tenant"]
    search_fields = ["record_id", "email", "reason"]
    date_hierarchy = "seen_at"
    fields = ["connection_link", "side", "record_id", "email", "code", "reason", "seen_at"]
    readonly_fields = ["connection_link"]

    @admin.display(description="Connection", ordering="connection")
    def connection_link(self, obj):
        return _change_link(obj.connection)


@admin.register(WebhookEvent)
class WebhookEventAdmin(SyncStateAdmin):
    list_display = ["dedupe_key", "provider", "connection_link", "status", "attempts", "received_at", "last_error"]
    list_filter = ["provider", "status"]
    list_select_related = ["connection__tenant"]
    search_fields = ["dedupe_key", "last_error"]
    date_hierarchy = "received_at"
    fields = [
        "provider", "connection_link", "dedupe_key", "status", "attempts", "last_error", "received_at",
        "processed_at", "body_pretty",
    ]  # fmt: skip
    readonly_fields = ["connection_link", "body_pretty"]
    actions = ["retry"]

    @admin.display(description="Connection", ordering="connection")
    def connection_link(self, obj):
        return _change_link(obj.connection)

    @admin.display(description="Body")
    def body_pretty(self, obj):
        return _pretty_json(obj.body)

    @admin.action(description="Retry selected failed events")
    def retry(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        count = webhook_events_retry(event_ids=selected)
        self.message_user(request, f"Queued {_count(count, 'failed event')} for processing again.", messages.SUCCESS)
        if left := len(selected) - count:
            self.message_user(
                request,
                f"{_count(left, 'selected event')} left as is: only failed events of a connection are retried.",
                messages.WARNING,
            )


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(SyncStateAdmin):
    list_display = ["day", "provider", "status_code", "count", "last_reason", "last_seen_at"]
    list_filter = ["provider", "status_code"]
    search_fields = ["provider", "last_reason"]
    date_hierarchy = "day"


@admin.register(OutboxEntry)
class OutboxEntryAdmin(SyncStateAdmin):
    list_display = ["__str__", "contact_link", "connection_link", "attempts", "record_failures", "created_at"]
    list_filter = ["connection__provider", "connection__tenant", ("last_error", admin.EmptyFieldListFilter)]
    list_select_related = ["contact", "connection__tenant"]
    search_fields = ["contact__email", "last_error"]
    date_hierarchy = "created_at"
    fields = ["contact_link", "connection_link", "attempts", "record_failures", "last_error", "created_at"]
    readonly_fields = ["contact_link", "connection_link"]

    def has_delete_permission(self, request, obj=None):
        return False  # a deleted entry is a change that never reaches the CRM

    @admin.display(description="Contact", ordering="contact__email")
    def contact_link(self, obj):
        return _change_link(obj.contact)

    @admin.display(description="Connection", ordering="connection")
    def connection_link(self, obj):
        return _change_link(obj.connection)


@admin.register(Suppression)
class SuppressionAdmin(SyncStateAdmin):
    """The suppression list. Only hashes are stored, so no email is shown; `manage.py suppression` finds one by
    its email and adds one."""

    list_display = ["pk", "tenant", "source", "provider", "remote_id", "created_at", "created_by", "lifted_at"]
    list_filter = ["tenant", "source", ("lifted_at", admin.EmptyFieldListFilter)]
    list_select_related = ["tenant"]
    search_fields = ["remote_id", "reason"]
    date_hierarchy = "created_at"
    fields = [
        "tenant", "source", "provider", "remote_id", "reason", "email_hash", "created_at", "created_by",
        "lifted_at", "lifted_by",
    ]  # fmt: skip
    actions = ["lift"]

    def has_delete_permission(self, request, obj=None):
        return False  # lifting keeps who let the person back, and when

    @admin.action(description="Lift selected suppressions (the next sync brings the people back)")
    def lift(self, request, queryset):
        count = suppressions_lift(suppressions=queryset, by=request.user.get_username())
        self.message_user(request, f"Lifted {_count(count, 'suppression')}.", messages.SUCCESS)


def admin_search_bound(site: admin.AdminSite) -> None:
    """Bound every registered admin's search as the contacts page bounds its own.

    Each word of a search becomes one more condition per search field: a few thousand words made a
    query too large for the database to plan (a 500).
    """
    for model_admin in site._registry.values():
        unbounded = model_admin.get_search_results

        def bounded(request, queryset, search_term, _unbounded=unbounded):
            return _unbounded(request, queryset, contact_search_query(search_term).text)

        model_admin.get_search_results = bounded
