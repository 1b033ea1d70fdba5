"""Tenant members: who may be added, and whose password may change."""

import pytest
from django.contrib.auth import authenticate, get_user_model

from syncapp.exceptions import ValidationError
from syncapp.services.tenants import tenant_add_member, tenant_create

pytestmark = pytest.mark.django_db


def test_a_new_member_without_a_password_cannot_log_in(tenant):
    tenant_add_member(tenant=tenant, username="carol")

    assert not get_user_model().objects.get(username="carol").has_usable_password()


def test_adding_a_member_again_needs_no_flag_and_changes_nothing(tenant):
    alice = get_user_model().objects.get(username="alice")

    tenant_add_member(tenant=tenant, username="alice")

    assert alice.membership_set.count() == 1
    assert authenticate(username="alice", password="pw-alice-123") == alice


def test_an_existing_user_without_a_tenant_is_not_added_silently(db):
    get_user_model().objects.create_user("admin", password="pw-admin-12345")
    other = tenant_create(slug="globex")

    with pytest.raises(ValidationError, match="already exists"):
        tenant_add_member(tenant=other, username="admin")
    assert not other.members.exists()
