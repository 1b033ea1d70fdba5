from django.core.management.base import BaseCommand

from syncapp.services.schedules import schedules_sync


class Command(BaseCommand):
    help = (
        "Create or update the django-q2 schedule that polls each active connection, and remove the "
        "schedules of paused, disconnected or deleted ones. Safe to run any number of times."
    )

    def handle(self, *args, **options):
        kept, removed = schedules_sync()
        self.stdout.write(self.style.SUCCESS(f"{kept} connection(s) scheduled, {removed} stale schedule(s) removed."))
