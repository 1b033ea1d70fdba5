"""Pipedrive persons (API v2) <-> the universal contact."""

from datetime import datetime

from syncapp.engine import ContactRecord, RemoteState, normalize_email


def _primary(entries) -> str:
    entries = entries or []
    chosen = next((entry for entry in entries if entry.get("primary")), entries[0] if entries else None)
    return (chosen or {}).get("value") or ""


def _custom_value(value) -> str:
    # REST answers hold the plain value; webhook payloads wrap it as {"type": ..., "value": ...}.
    if isinstance(value, dict):
        value = value.get("value")
    return "" if value is None else str(value)


def to_state(data: dict, *, pronouns_key: str) -> RemoteState:
    custom = data.get("custom_fields") or {}
    record = ContactRecord(
        email=_primary(data.get("emails")),
        first_name=data.get("first_name") or "",
        last_name=data.get("last_name") or "",
        phone=_primary(data.get("phones")),
        job_title=data.get("job_title") or "",
        pronouns=_custom_value(custom.get(pronouns_key)) if pronouns_key else "",
    )
    return RemoteState(
        remote_id=str(data["id"]),
        record=record,
        deleted=bool(data.get("is_deleted")),
        modified_at=parse_time(data.get("update_time")),
        version=data.get("update_time") or "",
        other_emails=tuple(
            entry["value"]
            for entry in data.get("emails") or []
            if entry.get("value") and normalize_email(entry["value"]) != record.email
        ),
    )


def _with_primary(entries, value: str, label: str) -> list[dict]:
    """Set the primary entry to ``value`` and keep every other entry as it was."""
    others = [dict(entry, primary=False) for entry in entries or [] if not entry.get("primary")]
    others = [entry for entry in others if normalize_email(entry.get("value")) != normalize_email(value)]
    if not value:
        return others
    return [{"value": value, "primary": True, "label": label}, *others]


def to_body(values: dict[str, str], *, current: dict | None, full: dict[str, str], pronouns_key: str) -> dict:
    """Build a create or PATCH body from changed ``values``; ``full`` is the whole record (for the name)."""
    current = current or {}
    creating = not current
    # A create leaves empty fields out; an update clears them as the v2 schema allows (a string for
    # job_title, which it types as a string, and null only for custom fields).
    values = {key: value for key, value in values.items() if value or not creating}
    body: dict = {}
    if "first_name" in values or "last_name" in values or creating:
        # v2 writes take "name" only; Pipedrive splits it into first and last name again.
        body["name"] = " ".join(part for part in (full.get("first_name"), full.get("last_name")) if part) or full.get(
            "email", ""
        )
    if "email" in values:
        body["emails"] = _with_primary(current.get("emails"), values["email"], "work")
    if "phone" in values:
        body["phones"] = _with_primary(current.get("phones"), values["phone"], "work")
    if "job_title" in values:
        body["job_title"] = values["job_title"]
    if "pronouns" in values and pronouns_key:
        body["custom_fields"] = {pronouns_key: values["pronouns"] or None}  # null clears a custom field
    return body


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
