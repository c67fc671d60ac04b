"""Request limits: how much one call may send, and ask the platform to compute, from settings.

The API's boundary (`api/boundary.py`) holds bodies to the byte limits while they stream; the
routes call the checks below on parsed input before any service decodes, encodes or scores.
Every refusal names the limit and the setting that raises it: bytes are 413, counts 422.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from asifdb.errors import InvalidInput, TooLarge
from asifdb.settings import Settings


class Upload(Protocol):
    """An uploaded file as the API hands it over (Starlette's `UploadFile`)."""

    filename: str | None
    file: BinaryIO


@dataclass(frozen=True)
class RequestLimits:
    """Each limit with the setting that holds it (field `x` is setting `API_MAX_X`)."""

    json_bytes: int
    classify_bytes: int
    retrieve_bytes: int
    upload_bytes: int
    upload_files: int
    image_bytes: int
    images: int
    candidate_images: int
    candidate_texts: int
    text_chars: int
    labels: int
    templates: int
    template_chars: int
    captions: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "RequestLimits":
        return cls(
            **{name: getattr(settings, f"api_max_{name}") for name in cls.__dataclass_fields__}
        )

    def body_bytes(self, method: str, path: str) -> tuple[int, str]:
        """The most a request's body may hold on this route, and the setting that says so."""
        by_route = {
            ("POST", "/v1/classify"): "classify_bytes",
            ("POST", "/v1/retrieve"): "retrieve_bytes",
            ("POST", "/v1/pairs"): "upload_bytes",
            ("POST", "/v1/curation/value"): "upload_bytes",
        }
        name = by_route.get((method, path), "json_bytes")
        return getattr(self, name), setting(name)

    def form_parts(self) -> dict[str, int]:
        """The multipart parser's own caps, set so that the counts above are what refuse a
        request (with their names); a text field's bytes stay at Starlette's 1 MiB."""
        return {
            "max_fields": max(self.labels + self.templates, self.candidate_texts, self.upload_files)
            + 16,
            "max_files": max(self.images, self.candidate_images + 1, self.upload_files) + 1,
        }

    def read_images(
        self, files: Sequence[Upload], *, field: str, most: str
    ) -> list[tuple[str, bytes]]:
        """Each file's name and bytes, once their count (limit `most`) and sizes are checked."""
        count(field, len(files), getattr(self, most), most)
        read = []
        for upload in files:
            name = upload.filename or "image"
            data = upload.file.read(self.image_bytes + 1)
            if len(data) > self.image_bytes:
                raise TooLarge(
                    f"{field}: {name} is over {self.image_bytes} bytes, the most one image may "
                    f"be ({setting('image_bytes')})"
                )
            read.append((name, data))
        return read

    def check_texts(self, field: str, texts: Sequence[str], *, most: str | None = None) -> None:
        """At most `most`'s count of texts (when given), each within API_MAX_TEXT_CHARS."""
        if most is not None:
            count(field, len(texts), getattr(self, most), most)
        for text in texts:
            if len(text) > self.text_chars:
                raise InvalidInput(
                    f"{field}: a text of {len(text)} characters, at most {self.text_chars} "
                    f"({setting('text_chars')})"
                )

    def check_candidates(
        self, classes: Sequence[str], templates: Sequence[str], *, field: str = "labels"
    ) -> None:
        """Labels, templates and the captions they make (labels x templates) within limits."""
        count(field, len(classes), self.labels, "labels")
        count("templates", len(templates), self.templates, "templates")
        longest = max((len(t) for t in templates), default=0)
        if longest > self.template_chars:
            raise InvalidInput(
                f"templates: a template of {longest} characters, at most {self.template_chars} "
                f"({setting('template_chars')})"
            )
        captions = len(classes) * len(templates)
        if captions > self.captions:
            raise InvalidInput(
                f"{field}: {len(classes)} labels x {len(templates)} "
                f"templates = {captions} captions to encode, at most {self.captions} "
                f"({setting('captions')}): use fewer templates or labels"
            )


def setting(limit: str) -> str:
    """The environment variable that sets a limit."""
    return f"API_MAX_{limit.upper()}"


def count(field: str, n: int, most: int, limit: str) -> None:
    if n > most:
        raise InvalidInput(f"{field}: {n} in one request, at most {most} ({setting(limit)})")
