"""HubSpot: contacts API v3, properties, OAuth and signed webhooks."""
