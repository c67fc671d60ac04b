"""asifdb: a CLIP-like image-text model with no training (ASIF), its pairs in PostgreSQL."""

__version__ = "0.1.0"
