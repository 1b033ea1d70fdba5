"""HubSpot contact properties <-> the universal contact."""

from datetime import datetime

from syncapp.engine import FIELDS, ContactRecord, RemoteState

PROPERTY_FOR_FIELD = {
    "email": "email",
    "first_name": "firstname",
    "last_name": "lastname",
    "phone": "phone",
    "job_title": "jobtitle",
    "pronouns": "pronouns",
}
PRONOUNS_PROPERTY = {
    "name": "pronouns",
    "label": "Pronouns",
    "type": "string",
    "fieldType": "text",
    "groupName": "contactinformation",
    "description": "The contact's pronouns, kept in sync by contactsync.",
}
# Read alongside the mapped properties: the cursor for incremental reads, and merge history.
EXTRA_PROPERTIES = ["lastmodifieddate", "hs_merged_object_ids"]


def property_names(*, pronouns_property: str | None) -> dict[str, str]:
    """Return field -> HubSpot property for this account (pronouns only once its property exists)."""
    names = {name: prop for name, prop in PROPERTY_FOR_FIELD.items() if name != "pronouns"}
    if pronouns_property:
        names["pronouns"] = pronouns_property
    return names


def to_state(data: dict, *, names: dict[str, str]) -> RemoteState:
    properties = data.get("properties") or {}
    merged = properties.get("hs_merged_object_ids") or ""
    return RemoteState(
        remote_id=str(data["id"]),
        record=ContactRecord(**{name: properties.get(prop) or "" for name, prop in names.items()}),
        deleted=bool(data.get("archived")),
        modified_at=parse_time(data.get("updatedAt")),
        version=data.get("updatedAt") or "",
        merged_ids=tuple(part for part in merged.split(";") if part),
    )


def to_properties(values: dict[str, str], *, names: dict[str, str]) -> dict[str, str]:
    # An empty string clears a property in HubSpot, which is what an emptied field means.
    return {names[name]: value for name, value in values.items() if name in names and name in FIELDS}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def modified_ms(data: dict) -> int:
    """Return a record's lastmodifieddate in epoch milliseconds (the search cursor's unit)."""
    value = (data.get("properties") or {}).get("lastmodifieddate") or data.get("updatedAt")
    if value and value.isdigit():
        return int(value)
    moment = parse_time(value)
    return int(moment.timestamp() * 1000) if moment else 0


def archived_ms(data: dict) -> int:
    """Return when an archived record was archived, in epoch milliseconds (its last update if HubSpot does not say)."""
    moment = parse_time(data.get("archivedAt") or data.get("updatedAt"))
    return int(moment.timestamp() * 1000) if moment else 0
