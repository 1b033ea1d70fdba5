"""Tests of the CRM providers."""
