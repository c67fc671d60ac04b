"""Uploaded pairs: staged as a JSONL source in the data folder, then ingested like any source."""

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from asifdb.errors import InvalidInput, TooLarge


@dataclass(frozen=True)
class UploadLimits:
    max_files: int = 1000
    max_file_bytes: int = 20 * 1024 * 1024
    max_total_bytes: int = 512 * 1024 * 1024


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stage(
    *,
    uploads_dir: Path,
    files: list[tuple[str, bytes]],
    captions: list[str],
    actor: str,
    limits: UploadLimits = UploadLimits(),
) -> Path:
    """Write the uploaded images and a `pairs.jsonl` naming them; return the JSONL's path.

    Bad items (an empty caption, a corrupt image) are not refused here: the job rejects them
    one by one with a reason, and the rest go in.
    """
    if not files:
        raise InvalidInput("no images: send one or more files in the `images` field")
    if len(files) != len(captions):
        raise InvalidInput(
            f"{len(files)} images but {len(captions)} captions: send one caption per image"
        )
    if len(files) > limits.max_files:
        raise TooLarge(f"{len(files)} images in one upload: at most {limits.max_files}")
    total = 0
    for name, data in files:
        if len(data) > limits.max_file_bytes:
            raise TooLarge(f"{name} is {len(data)} bytes: at most {limits.max_file_bytes}")
        total += len(data)
    if total > limits.max_total_bytes:
        raise TooLarge(f"the upload is {total} bytes: at most {limits.max_total_bytes}")
    folder = uploads_dir / uuid.uuid4().hex
    folder.mkdir(parents=True)
    lines = []
    for index, ((name, data), caption) in enumerate(zip(files, captions, strict=True)):
        stored = f"{index:05d}-{_SAFE.sub('_', Path(name).name)[:100] or 'image'}"
        (folder / stored).write_bytes(data)
        lines.append(
            json.dumps(
                {"image": stored, "caption": caption, "upload_name": name, "uploaded_by": actor}
            )
        )
    jsonl = folder / "pairs.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return jsonl
