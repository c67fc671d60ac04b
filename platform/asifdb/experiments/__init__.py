"""The experiments behind docs/results.md: accuracy, scaling and speed measured through the
platform's own services on the real data; each runs as `python -m asifdb.experiments.<name>`."""
