import pytest
from django.core.cache import cache

from syncapp.services.connections import connection_create
from syncapp.services.tenants import tenant_create
from tests.fakes import InMemoryCrm


@pytest.fixture(autouse=True)
def memory_provider(settings, tmp_path_factory):
    settings.SYNCAPP_PROVIDERS = {**settings.SYNCAPP_PROVIDERS, "memory": "tests.fakes.InMemoryAdapter"}
    settings.SYNC_ENCRYPTION_KEY = "test-key"
    # Retries and shared rate limits run for real, without the waiting (a rate-limit test sets its own).
    settings.HTTP_RETRY_BASE_DELAY = 0
    settings.HUBSPOT_RATE_LIMIT = 100_000
    settings.HUBSPOT_SEARCH_RATE_PER_SECOND = 100_000
    settings.PIPEDRIVE_RATE_LIMIT = settings.PIPEDRIVE_OAUTH_RATE_LIMIT = settings.PIPEDRIVE_SEARCH_RATE_LIMIT = 100_000
    settings.RATE_LIMIT_DB_PATH = str(tmp_path_factory.getbasetemp() / "ratelimit.sqlite")
    InMemoryCrm.accounts.clear()
    cache.clear()  # cached CRM field lists are keyed by connection id, which tests reuse


@pytest.fixture
def tenant(db):
    return tenant_create(slug="acme", name="Acme", username="alice", password="pw-alice-123")


def make_connection(tenant, account_id="crm-1", *, unique_emails=True, on_crm_delete=None, **kwargs):
    crm = InMemoryCrm(account_id, unique_emails=unique_emails)
    connection = connection_create(
        tenant=tenant, provider="memory", account_id=account_id, credentials={"token": "secret-token"}, **kwargs
    )
    if on_crm_delete:
        connection.on_crm_delete = on_crm_delete
        connection.save(update_fields=["on_crm_delete"])
    return connection, crm


@pytest.fixture
def connection_and_crm(tenant):
    return make_connection(tenant)
