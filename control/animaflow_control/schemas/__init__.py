"""Pydantic models of every request and response."""
