"""HTTP entry points: thin views that check the request, call a service and answer."""
