"""The dashboard: server-rendered pages and their static files."""
