import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django_q.brokers import get_broker

from syncapp.providers import get_adapter_classes
from syncapp.sandbox.server import SandboxServer
from syncapp.services.tenants import tenant_create
from tests.fakes import InMemoryCrm
from tests.helpers import make_connection

TESTS = Path(__file__).parent
# The folders whose tests are slow, and the marker each one's tests get (pyproject.toml lists them).
SLOW_FOLDERS = {"browser": "browser", "e2e": "e2e", "demo": "e2e", "sandbox": "sandbox", "bench": "bench"}


def pytest_collection_modifyitems(items):
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0]
        if folder in SLOW_FOLDERS:
            item.add_marker(SLOW_FOLDERS[folder])


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """SQLite tests use a file, not shared-cache memory: tests with a live server write from several threads,
    and shared-cache memory databases answer "table is locked" at once instead of waiting for the lock."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


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
    if settings.CACHES["default"]["BACKEND"].endswith("FileBasedCache"):
        settings.CACHES = {
            "default": {**settings.CACHES["default"], "LOCATION": str(tmp_path_factory.getbasetemp() / "cache")}
        }
    InMemoryCrm.accounts.clear()
    cache.clear()  # cached CRM field lists are keyed by connection id, which tests reuse


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Most tests create a user and many log in; a fast hasher keeps PBKDF2's deliberate cost out of the loop."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def login_throttling_off(settings):
    """Client.login() and authenticate() without a request cannot pass django-axes' backend, which needs the
    request; tests/security/test_login_throttling.py turns it back on to test it."""
    settings.AXES_ENABLED = False


@pytest.fixture
def tenant(db):
    return tenant_create(slug="acme", name="Acme", username="alice", password="pw-alice-123")


@pytest.fixture
def alice(tenant):
    """A browser signed in as alice, the member of ``tenant``."""
    client = Client()
    assert client.login(username="alice", password="pw-alice-123")
    return client


@pytest.fixture
def connection_and_crm(tenant):
    return make_connection(tenant)


@pytest.fixture
def broker():
    """The configured django-q2 broker, emptied: the ORM table by default, Redis when REDIS_URL is set."""
    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()


@pytest.fixture
def view_log():
    """Collect what the webhook view logs at warning level (caplog is off under ``-p no:logging``)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(f"{record.levelname} {record.getMessage()}")

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("syncapp.views.webhooks")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture
def crm_sandbox(settings):
    """The CRM sandbox on a free loopback port, stopped after the test; connections may use that port only."""
    with SandboxServer(seed=7) as server:
        settings.CRM_API_ALLOWED_HOSTS = [*settings.CRM_API_ALLOWED_HOSTS, urlsplit(server.url).netloc]
        yield server


@pytest.fixture
def sandbox_as_crm(crm_sandbox, monkeypatch):
    """The sandbox stands in for each CRM's own hosts, so its answers are worded as the CRM's would be.

    Any other allowed host is another server, whose answers are not repeated in messages (issue 11).
    """
    netloc = urlsplit(crm_sandbox.url).netloc
    for adapter_class in get_adapter_classes().values():
        if adapter_class.sandbox_class:
            monkeypatch.setattr(adapter_class, "api_hosts", (*adapter_class.api_hosts, netloc))
    return crm_sandbox
