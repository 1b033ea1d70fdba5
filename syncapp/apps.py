import os

from django.apps import AppConfig


class SyncappConfig(AppConfig):
    name = "syncapp"
    verbose_name = "Contact sync"

    def ready(self):
        from django.contrib import admin

        from syncapp import checks  # noqa: F401  (registers the system checks)
        from syncapp.admin import admin_search_bound

        # Here, not in syncapp.admin: every app's admin (auth's, axes') is registered by now.
        admin_search_bound(admin.site)

        # Only in the workers that bench_sync's tenants part starts: they count their tasks' queries.
        if os.environ.get("BENCH_TASK_QUERIES_KEY"):
            from syncapp.sandbox.bench_tenants import task_queries_count

            task_queries_count(os.environ["BENCH_TASK_QUERIES_KEY"])
