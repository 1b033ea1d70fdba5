"""Tests of the HubSpot provider."""
