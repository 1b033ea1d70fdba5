"""Helpers the tests share (fixtures are in conftest.py): connections to the in-memory CRM or the sandbox,
and the tasks a test takes off the broker."""

from django_q.signing import SignedPackage

from syncapp.services.connections import connection_create
from tests.fakes import InMemoryCrm


def make_connection(tenant, account_id="crm-1", *, unique_emails=True, on_crm_delete=None, **kwargs):
    crm = InMemoryCrm(account_id, unique_emails=unique_emails)
    connection = connection_create(
        tenant=tenant, provider="memory", account_id=account_id, credentials={"token": "secret-token"}, **kwargs
    )
    if on_crm_delete:
        connection.on_crm_delete = on_crm_delete
        connection.save(update_fields=["on_crm_delete"])
    return connection, crm


def queued_tasks(broker) -> list[dict]:
    """Take every task off the broker and return their unpacked payloads."""
    tasks = []
    while broker.queue_size():
        task_id, payload = broker.dequeue()[0]
        broker.acknowledge(task_id)
        tasks.append(SignedPackage.loads(payload))
    return tasks


def sandbox_connection(tenant, server, provider, *, rate_limits=False, **account_options):
    """A sandbox account of ``provider`` and a connection of ``tenant`` to it, through the real adapter."""
    account = server.sandbox.account_create(provider, rate_limits=rate_limits, **account_options)
    connection = connection_create(
        tenant=tenant,
        provider=provider,
        account_id=account.account_id,
        credentials={"access_token": account.token},
        api_base_url=account.base_url,
    )
    return connection, account
