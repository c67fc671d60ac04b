"""Use cases. Each takes a session (or engine) and plain values; adapters call them."""
