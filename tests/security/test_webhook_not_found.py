"""The webhook endpoint's 404 for a provider it does not serve says so and nothing more."""

import json

import pytest
from django.test import Client


@pytest.mark.django_db
@pytest.mark.parametrize("provider_id", ["salesforce", "memory"])  # unknown; known but takes no webhooks
def test_an_unknown_provider_is_a_plain_404_that_does_not_describe_the_code(provider_id):
    response = Client().post(f"/webhooks/{provider_id}/", data=json.dumps([]), content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"error": "Unknown provider."}
