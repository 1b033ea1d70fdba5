from django.apps import AppConfig


class SyncdevConfig(AppConfig):
    name = "syncdev"
    verbose_name = "Development tools"
