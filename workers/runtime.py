"""Per-process state of a worker: the platform (its encoders load lazily, on first task).

Lazily, so that importing the Celery app (in the API, the CLI, the parent of a pool) never
loads a model or touches CUDA.
"""

from functools import cache

from asifdb.context import Platform
from asifdb.settings import get_settings


@cache
def platform() -> Platform:
    return Platform(get_settings())
