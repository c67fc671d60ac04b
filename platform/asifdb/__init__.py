"""asifdb: a CLIP-like image-text model with no training (ASIF), its pairs in PostgreSQL."""

from asifdb import telemetry

telemetry.disable()

__version__ = "0.1.0"
