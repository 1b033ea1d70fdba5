"""Every task a service queues by name is a function of syncapp.tasks: a typo fails here, not in a worker."""

import inspect
from pathlib import Path

from django.utils.module_loading import import_string

from syncapp import tasks
from syncapp.services import task_names


def test_every_task_name_the_services_queue_resolves_to_a_function_of_the_tasks_module():
    names = {key: value for key, value in vars(task_names).items() if key.endswith("_TASK")}
    assert len(names) == 5

    for dotted in names.values():
        function = import_string(dotted)
        assert inspect.isfunction(function) and function.__module__ == tasks.__name__, dotted


def test_no_service_spells_a_task_name_of_its_own():
    services = Path(task_names.__file__).parent
    for module in services.glob("*.py"):
        if module.name != "task_names.py":
            assert '"syncapp.tasks.' not in module.read_text(), module.name
