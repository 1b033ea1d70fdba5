"""The django-q2 tasks the services queue, by dotted name.

``syncapp.tasks`` imports the services, so the services name its functions instead of importing them;
every name is kept here, and tests/test_task_names.py checks that each resolves to a function there.
"""

SYNC_TASK = "syncapp.tasks.connection_sync"
POLL_TASK = "syncapp.tasks.connection_poll"
PUSH_TASK = "syncapp.tasks.connection_push"
PROCESS_TASK = "syncapp.tasks.webhook_events_process"
ARCHIVE_TASK = "syncapp.tasks.crm_records_archive"
