"""Admin for every model: list displays, filters and search (richer actions come with the UI work)."""

from django import forms
from django.contrib import admin

from syncapp.engine import FIELDS
from syncapp.exceptions import ValidationError
from syncapp.models import (
    Contact,
    ContactLink,
    CrmConnection,
    ExcludedRecord,
    Membership,
    OutboxEntry,
    SyncConflict,
    SyncRun,
    Tenant,
    WebhookEvent,
    WebhookRejection,
)
from syncapp.services.connections import api_base_validate, connection_delete
from syncapp.services.contacts import contact_create, contact_delete, contact_update, contact_validate
from syncapp.services.schedules import connection_schedule_update


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


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
    search_fields = ["email", "first_name", "last_name", "phone"]
    date_hierarchy = "updated_at"
    form = ContactAdminForm
    fields = ["tenant", *FIELDS, "deleted_at"]
    readonly_fields = ["deleted_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant"] if obj else self.readonly_fields

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
        fields = [
            "tenant", "provider", "account_id", "api_base_url", "status", "status_message", "conflict_strategy",
            "field_priorities", "on_crm_delete", "rate_limit", "rate_limited_until", "pronouns_state",
            "pronouns_field_key", "pronouns_message",
        ]  # fmt: skip

    def clean_api_base_url(self):
        try:
            return api_base_validate(self.cleaned_data["api_base_url"])
        except ValidationError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(CrmConnection)
class CrmConnectionAdmin(admin.ModelAdmin):
    form = CrmConnectionAdminForm
    list_display = ["__str__", "provider", "account_id", "tenant", "status", "conflict_strategy", "pronouns_state"]
    list_filter = ["provider", "status", "conflict_strategy", "pronouns_state"]
    search_fields = ["account_id", "tenant__slug"]
    readonly_fields = ["webhook_key", "lock_owner", "lock_expires_at", "sync_cursor", "last_full_sync_at"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        connection_schedule_update(connection=obj)  # pausing or resuming here moves the poll schedule too

    def delete_model(self, request, obj):
        connection_delete(connection=obj)

    def delete_queryset(self, request, queryset):
        for connection in queryset:
            connection_delete(connection=connection)


@admin.register(ContactLink)
class ContactLinkAdmin(admin.ModelAdmin):
    list_display = ["contact", "connection", "remote_id", "status", "last_synced_at"]
    list_filter = ["status", "connection__provider", "base_deleted"]
    search_fields = ["remote_id", "contact__email", "last_error"]
    raw_id_fields = ["contact", "connection"]


@admin.register(SyncConflict)
class SyncConflictAdmin(admin.ModelAdmin):
    list_display = ["field", "link", "local_value", "remote_value", "strategy", "winner", "resolution", "created_at"]
    list_filter = ["resolution", "strategy", "winner", "field"]
    search_fields = ["local_value", "remote_value", "link__contact__email"]
    date_hierarchy = "created_at"
    raw_id_fields = ["link", "resolved_by"]


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "pk", "connection", "trigger", "status", "started_at", "finished_at",
        "created", "updated", "deleted", "conflicts", "errors", "excluded", "api_calls",
    ]  # fmt: skip
    list_filter = ["status", "trigger", "connection__provider"]
    date_hierarchy = "started_at"


@admin.register(ExcludedRecord)
class ExcludedRecordAdmin(admin.ModelAdmin):
    list_display = ["connection", "side", "record_id", "email", "reason", "seen_at"]
    list_filter = ["side", "connection__provider"]
    search_fields = ["record_id", "email", "reason"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["dedupe_key", "provider", "connection", "status", "attempts", "received_at"]
    list_filter = ["provider", "status"]
    search_fields = ["dedupe_key", "last_error"]
    date_hierarchy = "received_at"
    readonly_fields = ["body"]


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(admin.ModelAdmin):
    list_display = ["day", "provider", "status_code", "count", "last_reason", "last_seen_at"]
    list_filter = ["provider", "status_code"]
    date_hierarchy = "day"


@admin.register(OutboxEntry)
class OutboxEntryAdmin(admin.ModelAdmin):
    list_display = ["contact", "connection", "attempts", "created_at", "last_error"]
    list_filter = ["connection__provider"]
    search_fields = ["contact__email", "last_error"]
    raw_id_fields = ["contact", "connection"]
