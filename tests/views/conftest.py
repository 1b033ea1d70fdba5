"""Signed-in clients for the page tests: bob of another tenant (alice of acme is in tests/conftest.py)."""

import pytest
from django.test import Client

from syncapp.services.tenants import tenant_create
from tests.helpers import make_connection


@pytest.fixture
def bob(db):
    tenant_create(slug="globex", name="Globex", username="bob", password="pw-bob-12345")
    client = Client()
    assert client.login(username="bob", password="pw-bob-12345")
    return client


@pytest.fixture
def connection(tenant):
    return make_connection(tenant)[0]
