"""Real embeddings for the engine's fixture and benchmarks, from the platform's default encoders.

Anchor pairs come from the Tiny-ImageNet webdataset shards, queries from its validation split.
"""

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
PAIRS = SHARED_DATA / "tiny-imagenet-pairs-wds"
VAL = SHARED_DATA / "tiny-imagenet"
TEMPLATES = ("a photo of a {}.", "a close-up photo of the {}.")


@dataclass(frozen=True)
class Pairs:
    keys: list[str]
    images: list[bytes]
    captions: list[str]


def read_pairs(n: int) -> Pairs:
    """The first `n` pairs of the shards, in shard order."""
    keys: list[str] = []
    images: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    for shard in sorted(PAIRS.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, ext = member.name.partition(".")
                if ext not in ("jpg", "txt"):
                    continue
                data = tar.extractfile(member).read()
                if ext == "jpg":
                    images[key] = data
                    keys.append(key)
                else:
                    captions[key] = data.decode()
        if len(keys) >= n:
            break
    keys = keys[:n]
    return Pairs(keys, [images[k] for k in keys], [captions[k] for k in keys])


def read_val(classes: int, per_class: int) -> tuple[list[bytes], np.ndarray, list[str]]:
    """`per_class` validation images of each of the first `classes` classes (sorted wnids):
    (image bytes, labels (n,) int64, class names)."""
    names = dict(line.split("\t", 1) for line in (VAL / "classnames.txt").read_text().splitlines())
    wnids = sorted(p.name for p in (VAL / "val").iterdir())[:classes]
    images: list[bytes] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        for path in sorted((VAL / "val" / wnid).iterdir())[:per_class]:
            images.append(path.read_bytes())
            labels.append(label)
    return images, np.array(labels, dtype=np.int64), [names[w].split(",")[0] for w in wnids]


def encoders() -> tuple[object, object]:
    """The platform's default image and text encoders, on CPU with torch (no OpenVINO)."""
    from asifdb.encoders.registry import (
        DEFAULT_IMAGE_ENCODER,
        DEFAULT_TEXT_ENCODER,
        get_encoder,
    )

    image = get_encoder(DEFAULT_IMAGE_ENCODER, device="cpu", runtime="torch")
    text = get_encoder(DEFAULT_TEXT_ENCODER, device="cpu")
    return image, text


def embed_real(n_pairs: int, classes: int, per_class: int) -> dict[str, np.ndarray]:
    """Encoded anchors, queries and class captions (float32 unit rows) with labels."""
    image_encoder, text_encoder = encoders()
    pairs = read_pairs(n_pairs)
    val_images, labels, class_names = read_val(classes, per_class)
    captions = [t.format(name) for name in class_names for t in TEMPLATES]
    return {
        "anchor_image": image_encoder.embed_batch(pairs.images),
        "anchor_text": text_encoder.embed_batch(pairs.captions),
        "query_image": image_encoder.embed_batch(val_images),
        "caption_text": text_encoder.embed_batch(captions),
        "query_label": labels,
        "n_templates": np.array(len(TEMPLATES)),
        "class_names": np.array(class_names),
    }


def cached(path: Path, n_pairs: int, classes: int, per_class: int) -> dict[str, np.ndarray]:
    """`embed_real`, saved at `path` (float16) the first time and loaded after."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        data = embed_real(n_pairs, classes, per_class)
        half = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in data.items()}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **half)
        path.write_bytes(buffer.getvalue())
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
