"""Forms of the operator pages. They validate through the services' own rules and write nothing."""

from django import forms

from syncapp.engine import APP, CRM, FIELDS
from syncapp.exceptions import ValidationError
from syncapp.models import Contact, CrmConnection
from syncapp.services.contacts import MAX_LENGTHS, contact_clean, contact_validate

FIELD_LABELS = {
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "phone": "Phone",
    "job_title": "Job title",
    "pronouns": "Pronouns",
}


class ContactForm(forms.Form):
    """A contact's six fields, checked with contact_clean per field and contact_validate as a whole."""

    email = forms.CharField(label=FIELD_LABELS["email"], max_length=MAX_LENGTHS["email"])
    first_name = forms.CharField(label=FIELD_LABELS["first_name"], max_length=MAX_LENGTHS["first_name"], required=False)
    last_name = forms.CharField(label=FIELD_LABELS["last_name"], max_length=MAX_LENGTHS["last_name"], required=False)
    phone = forms.CharField(label=FIELD_LABELS["phone"], max_length=MAX_LENGTHS["phone"], required=False)
    job_title = forms.CharField(label=FIELD_LABELS["job_title"], max_length=MAX_LENGTHS["job_title"], required=False)
    pronouns = forms.CharField(label=FIELD_LABELS["pronouns"], max_length=MAX_LENGTHS["pronouns"], required=False)

    def __init__(self, *args, tenant_id: int, contact: Contact | None = None, **kwargs):
        if contact is not None and "initial" not in kwargs:
            kwargs["initial"] = contact.to_record().as_dict()
        super().__init__(*args, **kwargs)
        self.tenant_id = tenant_id
        self.contact = contact

    def clean(self):
        data = super().clean()
        values = {name: data[name] for name in FIELDS if name in data}
        # Field by field first, so each message sits next to the field it is about.
        for name, value in values.items():
            try:
                contact_clean({name: value})
            except ValidationError as exc:
                self.add_error(name, str(exc))
        if self.errors:
            return data
        try:
            cleaned = contact_validate(
                tenant_id=self.tenant_id, values=values, contact_id=self.contact.pk if self.contact else None
            )
        except ValidationError as exc:
            # Every value is valid on its own, so what is left is the email another live contact uses.
            self.add_error("email", str(exc))
            return data
        return cleaned


OWNER_CHOICES = [(CRM, "CRM"), (APP, "App")]


class ConflictPolicyForm(forms.Form):
    """A connection's conflict strategy and, for field_priority, the side that owns each field."""

    conflict_strategy = forms.ChoiceField(label="Strategy", choices=CrmConnection.Strategy.choices)

    def __init__(self, *args, connection: CrmConnection, **kwargs):
        if "initial" not in kwargs:
            priorities = connection.field_priorities or {}
            kwargs["initial"] = {
                "conflict_strategy": connection.conflict_strategy,
                **{f"owner_{name}": priorities.get(name, CRM) for name in FIELDS},
            }
        kwargs.setdefault("prefix", f"policy-{connection.pk}")
        super().__init__(*args, **kwargs)
        self.connection = connection
        for name in FIELDS:
            self.fields[f"owner_{name}"] = forms.ChoiceField(
                label=f"{FIELD_LABELS[name]} owner", choices=OWNER_CHOICES, initial=CRM
            )

    def owner_fields(self):
        return [self[f"owner_{name}"] for name in FIELDS]

    def field_priorities(self) -> dict[str, str]:
        return {name: self.cleaned_data[f"owner_{name}"] for name in FIELDS}
