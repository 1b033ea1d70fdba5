"""django-q2 schedules: each connection's poll, and the one-off retries, kept one per name."""

import ast
import enum
from datetime import timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from syncapp.models import CrmConnection
from syncapp.providers import get_adapter_class, provider_ids
from syncapp.services.task_names import POLL_TASK

# Namespace of the PostgreSQL advisory locks taken per schedule name (any fixed int4 of ours).
_ADVISORY_LOCK_NAMESPACE = 0x5C4ED


def _name_lock(name: str) -> None:
    """Serialise writers of one schedule name until the transaction ends.

    django-q2 keeps names unique only by checking before inserting, so two workers rescheduling
    at once can both insert. On PostgreSQL an advisory lock per name orders them; SQLite
    transactions begin IMMEDIATE here (settings.DATABASES), which already serialises writers.
    """
    if db_connection.vendor == "postgresql":
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_ADVISORY_LOCK_NAMESPACE, name])


def _literal(value) -> str:
    """``value`` as the Python literal django-q2's scheduler reads back with ast.literal_eval.

    An enum member (a model's TextChoices) is stored as its value: its repr is not a literal, and a
    schedule whose kwargs cannot be read runs its task without them.
    """
    if isinstance(value, dict):
        value = {key: item.value if isinstance(item, enum.Enum) else item for key, item in value.items()}
    text = repr(value)
    if ast.literal_eval(text) != value:
        raise ValueError(f"{text} does not read back as the same value")
    return text


def schedule_upsert(*, name: str, func: str, args: tuple, kwargs: dict | None = None, **fields) -> Schedule:
    """Create or update the one schedule called ``name``; the last caller's fields win. Race-free.

    ``fields`` are Schedule fields (next_run, schedule_type, minutes, repeats); those not given keep
    their stored value, or the model default for a new schedule. Duplicates left by an earlier race
    are removed.
    """
    with transaction.atomic():
        _name_lock(name)
        schedule = Schedule.objects.filter(name=name).order_by("pk").first() or Schedule(name=name)
        schedule.func, schedule.args = func, _literal(args)
        schedule.kwargs = _literal(kwargs) if kwargs else None
        for field, value in fields.items():
            setattr(schedule, field, value)
        schedule.full_clean()
        schedule.save()
        Schedule.objects.filter(name=name).exclude(pk=schedule.pk).delete()
    return schedule


def schedule_once_upsert(*, name: str, func: str, args: tuple, delay: float, **fields) -> Schedule:
    """Run ``func(*args)`` once, ``delay`` seconds from now: one pending run per name, the latest request wins.

    ``kwargs`` are the task's keyword arguments; ``fields`` are further Schedule fields, such as the
    ``cluster`` to run on.
    """
    run_at = timezone.now() + timedelta(seconds=delay)
    return schedule_upsert(
        name=name, func=func, args=args, schedule_type=Schedule.ONCE, repeats=-1, next_run=run_at, **fields
    )


def poll_interval_minutes(connection: CrmConnection) -> int:
    """Minutes between polls: the adapter's own interval setting (milliseconds)."""
    setting = get_adapter_class(connection.provider).poll_interval_setting
    return max(1, round(getattr(settings, setting) / 60_000))


def connection_schedule_update(*, connection: CrmConnection) -> Schedule | None:
    """Poll an active connection on its interval; a paused or disconnected one has no schedule. Idempotent.

    A connection whose provider has no adapter configured yet is not polled either.
    """
    name = CrmConnection.poll_schedule_name(connection.pk)
    if connection.status not in CrmConnection.SYNCABLE_STATUSES or connection.provider not in provider_ids():
        Schedule.objects.filter(name=name).delete()
        return None
    return schedule_upsert(
        name=name,
        func=POLL_TASK,
        args=(connection.pk,),
        schedule_type=Schedule.MINUTES,
        minutes=poll_interval_minutes(connection),
        repeats=-1,
    )


def schedules_sync() -> tuple[int, int]:
    """Bring every connection's poll schedule up to date and drop the rest; return (kept, removed)."""
    polls = Schedule.objects.filter(name__startswith=CrmConnection.POLL_SCHEDULE_PREFIX)
    before = set(polls.values_list("name", flat=True))
    kept = sum(1 for connection in CrmConnection.objects.all() if connection_schedule_update(connection=connection))
    live_names = {CrmConnection.poll_schedule_name(pk) for pk in CrmConnection.objects.values_list("pk", flat=True)}
    polls.exclude(name__in=live_names).delete()
    return kept, len(before - set(polls.values_list("name", flat=True)))
