"""Per-process state of a worker: the platform (its encoders load lazily, on first task), and
the encoders a re-encode asks for by name.

Lazily, so that importing the Celery app (in the API, the CLI, the parent of a pool) never
loads a model or touches CUDA.
"""

from functools import cache

from asifdb.context import Platform
from asifdb.services.model import Encoders
from asifdb.settings import get_settings


@cache
def platform() -> Platform:
    return Platform(get_settings())


def encoders_for(image_name: str, text_name: str) -> Encoders:
    """The encoders called so: the configured ones when they match, else loaded once here."""
    return platform().encoders_of(image_name, text_name)
