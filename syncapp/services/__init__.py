"""Writes. Every function is keyword-only; callers never save models themselves."""
