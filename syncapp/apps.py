from django.apps import AppConfig


class SyncappConfig(AppConfig):
    name = "syncapp"
    verbose_name = "Contact sync"

    def ready(self):
        from syncapp import checks  # noqa: F401  (registers the system checks)
