"""HTTP API (FastAPI): one router per resource, mounted in `api/main.py`."""
