"""Celery workers: thin tasks that call asifdb services (ingestion batches, recovery)."""
