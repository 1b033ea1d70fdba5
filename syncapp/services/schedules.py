"""django-q2 schedules that poll each connection: created, updated and removed to follow connections."""

from django.conf import settings
from django_q.models import Schedule

from syncapp.models import CrmConnection
from syncapp.providers import get_adapter_class, provider_ids

POLL_TASK = "syncapp.tasks.connection_poll"


def _schedule_name(connection_id: int) -> str:
    return f"contactsync-poll-{connection_id}"


def poll_interval_minutes(connection: CrmConnection) -> int:
    """Minutes between polls: the adapter's own interval setting (milliseconds)."""
    setting = get_adapter_class(connection.provider).poll_interval_setting
    return max(1, round(getattr(settings, setting) / 60_000))


def connection_schedule_update(*, connection: CrmConnection) -> Schedule | None:
    """Poll an active connection on its interval; a paused or disconnected one has no schedule. Idempotent.

    A connection whose provider has no adapter configured yet is not polled either.
    """
    name = _schedule_name(connection.pk)
    if connection.status not in CrmConnection.SYNCABLE_STATUSES or connection.provider not in provider_ids():
        Schedule.objects.filter(name=name).delete()
        return None
    schedule, _ = Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": POLL_TASK,
            "args": repr((connection.pk,)),
            "schedule_type": Schedule.MINUTES,
            "minutes": poll_interval_minutes(connection),
            "repeats": -1,
        },
    )
    return schedule


def schedules_sync() -> tuple[int, int]:
    """Bring every connection's poll schedule up to date and drop the rest; return (kept, removed)."""
    polls = Schedule.objects.filter(name__startswith="contactsync-poll-")
    before = set(polls.values_list("name", flat=True))
    kept = sum(1 for connection in CrmConnection.objects.all() if connection_schedule_update(connection=connection))
    live_names = {_schedule_name(pk) for pk in CrmConnection.objects.values_list("pk", flat=True)}
    polls.exclude(name__in=live_names).delete()
    return kept, len(before - set(polls.values_list("name", flat=True)))
