"""Per-process state of a worker: the platform (its encoders load lazily, on first task), and
the encoders a re-encode asks for by name.

Lazily, so that importing the Celery app (in the API, the CLI, the parent of a pool) never
loads a model or touches CUDA.
"""

from functools import cache

from asifdb.context import Platform
from asifdb.encoders import Encoder, get_encoder
from asifdb.services.model import Encoders
from asifdb.settings import get_settings


@cache
def platform() -> Platform:
    return Platform(get_settings())


def encoders_for(image_name: str, text_name: str) -> Encoders:
    """The encoders called so: the configured ones when they match, else loaded once here."""
    configured = platform().encoders
    return Encoders(
        image=configured.image if configured.image.name == image_name else _other(image_name),
        text=configured.text if configured.text.name == text_name else _other(text_name),
    )


@cache
def _other(name: str) -> Encoder:
    return get_encoder(name, cache_dir=platform().settings.data_dir / "cache" / "encoders")
