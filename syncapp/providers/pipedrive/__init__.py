"""Pipedrive: persons API v2, person fields, OAuth and webhooks."""
