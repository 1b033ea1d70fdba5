"""Commands that serve or seed fake CRM data refuse to run in production."""

import pytest
from django.core.management import CommandError, call_command

from syncapp.management.commands import crm_sandbox


def test_crm_sandbox_refuses_to_run_in_production_before_serving_anything(settings, monkeypatch):
    settings.IS_PRODUCTION = True

    def serve(**kwargs):
        raise AssertionError("the sandbox was started")

    monkeypatch.setattr(crm_sandbox, "SandboxServer", serve)
    with pytest.raises(CommandError, match="does not run with DJANGO_ENV=production"):
        call_command("crm_sandbox", "--port", "0", "--account", "hubspot")
