"""Reads. Every selector is scoped to a tenant."""
