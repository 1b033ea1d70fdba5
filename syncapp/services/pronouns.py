"""The pronouns field every CRM needs: find it, create it, or map an existing one."""

from dataclasses import dataclass

from syncapp.exceptions import ProviderError, ValidationError
from syncapp.models import CrmConnection
from syncapp.providers import get_adapter

PRONOUNS_NAME = "pronouns"
PRONOUNS_LABEL = "Pronouns"


@dataclass(frozen=True)
class PronounsSetup:
    state: str
    key: str
    message: str
    # An existing field labelled "Pronouns" under another key, offered for mapping.
    candidate: str = ""


def connection_setup_pronouns(
    *, connection: CrmConnection, map_existing: str = "", create: bool = False
) -> PronounsSetup:
    """Make sure the CRM has a pronouns field and record its key on the connection. Idempotent.

    An existing field is used as is: by key with ``map_existing``, else the one named "pronouns",
    else (where the CRM generates keys) the one labelled "Pronouns". Where the CRM lets us name
    keys, a differently named field labelled "Pronouns" is offered for mapping instead of creating
    a second one, unless ``create`` asks for the "pronouns" field anyway. A refusal by the CRM
    (missing scope, plan limits) is recorded with its message.
    """
    adapter = get_adapter(connection)
    try:
        fields = {field.key: field for field in adapter.custom_fields()}
        labelled = [field for field in fields.values() if field.label.strip().lower() == PRONOUNS_LABEL.lower()]
        if map_existing:
            if map_existing not in fields:
                raise ValidationError(f"The CRM has no contact field with the key '{map_existing}'.")
            result = fields[map_existing]
        elif PRONOUNS_NAME in fields:
            result = fields[PRONOUNS_NAME]
        elif labelled and adapter.generated_field_keys:
            result = labelled[0]
        elif labelled and not create:
            candidate = labelled[0]
            return _record(
                connection,
                PronounsSetup(
                    state=CrmConnection.PronounsState.MISSING,
                    key="",
                    message=f"The CRM already has a field labelled '{candidate.label}' (key {candidate.key}). "
                    f"Map it with --map-existing {candidate.key}, or create a new one with --create.",
                    candidate=candidate.key,
                ),
            )
        else:
            result = adapter.ensure_custom_field(name=PRONOUNS_NAME, label=PRONOUNS_LABEL)
    except ProviderError as exc:
        return _record(connection, PronounsSetup(state=CrmConnection.PronounsState.FAILED, key="", message=str(exc)))
    verb = "Created" if result.created else "Using"
    return _record(
        connection,
        PronounsSetup(
            state=CrmConnection.PronounsState.CONFIGURED,
            key=result.key,
            message=f"{verb} the pronouns field {result.key}.",
        ),
    )


def _record(connection: CrmConnection, setup: PronounsSetup) -> PronounsSetup:
    connection.pronouns_state, connection.pronouns_message = setup.state, setup.message
    if setup.key:
        connection.pronouns_field_key = setup.key
    connection.save(update_fields=["pronouns_state", "pronouns_field_key", "pronouns_message", "updated_at"])
    return setup
