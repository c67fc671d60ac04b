"""Accuracy of the live model on a labelled folder (one sub-folder of images per class).

Every image goes through `services.classify`, batch by batch; `asifdb eval` and the published
results (docs/results.md) call `evaluate`.
"""

import io
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors.live import LiveModel
from asifdb.errors import Conflict, InvalidInput
from asifdb.ingest.class_folders import class_name, parse_classnames
from asifdb.prompts import TEMPLATE_SETS
from asifdb.services import labelsets
from asifdb.services.classify import MAX_IMAGES, Options, classify
from asifdb.services.model import Encoders, require_encoders

TOP = 5
# An image file read from a labelled folder (as ingestion's default limit), a class names file.
MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_CLASSNAMES_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class LabelledFolder:
    """Class names (sorted by folder) and each image's path with its class index."""

    classes: tuple[str, ...]
    images: tuple[tuple[Path, int], ...]


@dataclass(frozen=True)
class ImageResult:
    """One image: its true class, the predicted one, the top classes, every class's score (in
    the evaluation's class order) and the recorded prediction's id."""

    input: str
    true_label: str
    label: str
    top: tuple[str, ...]
    scores: tuple[float, ...]
    prediction_id: int | None

    @property
    def correct(self) -> bool:
        return self.label == self.true_label


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of one model version on a labelled folder, with every prediction."""

    classes: tuple[str, ...]
    templates: tuple[str, ...]
    options: Options
    model_version: int
    usable_pairs: int
    method: str
    seconds: float
    predictions: tuple[ImageResult, ...]

    @property
    def images(self) -> int:
        return len(self.predictions)

    @property
    def top1(self) -> float:
        return sum(r.correct for r in self.predictions) / self.images

    @property
    def top5(self) -> float:
        return sum(r.true_label in r.top[:TOP] for r in self.predictions) / self.images

    @property
    def chance(self) -> float:
        return 1 / len(self.classes)

    @property
    def per_class(self) -> dict[str, float]:
        """Top-1 accuracy of each class that has images."""
        hits: dict[str, list[bool]] = {}
        for r in self.predictions:
            hits.setdefault(r.true_label, []).append(r.correct)
        return {c: sum(hits[c]) / len(hits[c]) for c in self.classes if c in hits}

    def summary(self) -> dict[str, object]:
        """The figures, without the per-image predictions (what `asifdb eval --json` prints)."""
        return {
            "images": self.images,
            "classes": len(self.classes),
            "templates": len(self.templates),
            "top1": self.top1,
            "top5": self.top5,
            "chance": self.chance,
            "per_class": self.per_class,
            "k": self.options.k,
            "p": self.options.p,
            "aggregation": self.options.aggregation,
            "method": self.method,
            "model_version": self.model_version,
            "usable_pairs": self.usable_pairs,
            "seconds": self.seconds,
            "images_per_second": self.images / self.seconds if self.seconds else None,
        }


def read_folder(
    folder: Path | str,
    *,
    classnames: Path | str | None = None,
    limit_per_class: int | None = None,
) -> LabelledFolder:
    """The classes and images of `folder/<class>/<image>`, in sorted order.

    `classnames` is a file of `folder<TAB>name` lines (e.g. wnid -> name); folders it does not
    name are named by their folder, underscores as spaces (as class-folder ingest names them).
    `limit_per_class` keeps the first images of each class, by file name.
    """
    root = _expand(folder)
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder: give a folder with one sub-folder per class")
    if limit_per_class is not None and limit_per_class < 1:
        raise InvalidInput(f"limit per class {limit_per_class}: use at least 1")
    names = {}
    if classnames is not None:
        names_file = _expand(classnames)
        try:
            text = _read_file(names_file, MAX_CLASSNAMES_BYTES)
            if text is None:
                raise InvalidInput(
                    f"class names {names_file}: give a text file of `folder<TAB>name` lines "
                    f"(at most {MAX_CLASSNAMES_BYTES:,} bytes)"
                )
            names = parse_classnames(text.decode("utf-8"))
        except (OSError, ValueError) as error:  # ValueError: not UTF-8, or a NUL in the path
            raise InvalidInput(f"cannot read class names from {classnames}: {error}") from None
    # Everything cheap is checked before any image is read or encoded: a folder that is not
    # one of class sub-folders of images is refused after a listing and one file's header.
    try:
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(class_dirs) > labelsets.MAX_CLASSES:
            raise InvalidInput(
                f"{root} has {len(class_dirs)} sub-folders: at most {labelsets.MAX_CLASSES} "
                "classes, one sub-folder a class"
            )
        images: list[tuple[Path, int]] = []
        for label, class_dir in enumerate(class_dirs):
            files = sorted(
                f for f in class_dir.iterdir() if f.is_file() and not f.name.startswith(".")
            )
            images.extend((f, label) for f in files[:limit_per_class])
    except OSError as error:
        raise InvalidInput(f"cannot list {root}: {error}") from None
    if not images:
        raise InvalidInput(f"{root} holds no images in class sub-folders")
    read_image(images[0][0])
    return LabelledFolder(tuple(class_name(d.name, names) for d in class_dirs), tuple(images))


def read_image(path: Path) -> bytes:
    """An image file's bytes; InvalidInput, naming the file, if it cannot be read, is over
    MAX_IMAGE_BYTES or is not an image (its header only: decoding is the encoder's)."""
    try:
        data = _read_file(path, MAX_IMAGE_BYTES)
    except (OSError, ValueError) as error:
        raise InvalidInput(
            f"cannot read {path}: {getattr(error, 'strerror', None) or error}"
        ) from None
    if data is None:
        raise InvalidInput(f"{path} is not an image file of at most {MAX_IMAGE_BYTES:,} bytes")
    try:
        Image.open(io.BytesIO(data)).close()
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput(
            f"{path} is not an image: a labelled folder holds one sub-folder of images a class"
        ) from None
    return data


def _read_file(path: Path, limit: int) -> bytes | None:
    """A regular file's bytes, or None if it is not one or holds more than `limit` bytes.

    Opened non-blocking and read to the limit at most, so a device or a kernel file that never
    ends (/dev/zero, /proc/kmsg) gives an error or None at once instead of hanging.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1) or b""  # None: nothing to read yet (non-blocking)
    return data if len(data) <= limit else None


def _expand(path: Path | str) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError as error:  # ~user with no such user
        raise InvalidInput(f"{path}: {error}") from None


def read_templates(value: str) -> str | list[str]:
    """A built-in template set's name as it is, else a file's templates, one a line (blank
    lines and lines starting with # skipped); `labelsets.check` validates either."""
    if value in TEMPLATE_SETS:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise InvalidInput(
            f"templates {value!r}: name a built-in set ({', '.join(TEMPLATE_SETS)}) or give a "
            "file of templates, one a line, each containing {}"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read templates from {path}: {error}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def evaluate(
    *,
    sessions: sessionmaker[Session],
    live: LiveModel,
    encoders: Encoders,
    folder: Path | str,
    templates: list[str] | str | None = None,
    classnames: Path | str | None = None,
    options: Options | None = None,
    limit_per_class: int | None = None,
    batch_size: int = 32,
    record: bool = False,
    evidence_limit: int | None = None,
    client: str | None = None,
    channel: str = "eval",
    on_batch: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Classify every image of a labelled folder among its classes; top-1/top-5 accuracy.

    Each batch is one `classify` call in its own transaction (recorded predictions are kept as
    they are made). Raises Conflict if the model changed while the folder was classified: the
    figures would mix two models. `on_batch(done, total)` reports progress.
    """
    if not 1 <= batch_size <= MAX_IMAGES:
        raise InvalidInput(f"batch size {batch_size}: use 1 to {MAX_IMAGES}")
    with sessions() as session:
        require_encoders(session, encoders)  # before reading the folder; classify checks too
    options = options or Options()
    labelled = read_folder(folder, classnames=classnames, limit_per_class=limit_per_class)
    candidates = labelsets.check(list(labelled.classes), templates)
    root = Path(folder).expanduser()
    started = time.perf_counter()
    results: list[ImageResult] = []
    versions: set[int] = set()
    usable = method = None
    for start in range(0, len(labelled.images), batch_size):
        batch = labelled.images[start : start + batch_size]
        images = [(str(path.relative_to(root)), read_image(path)) for path, _ in batch]
        with sessions.begin() as session:
            outputs = classify(
                session,
                live=live,
                encoders=encoders,
                images=images,
                candidates=candidates,
                options=options,
                client=client,
                channel=channel,
                record=record,
                evidence_limit=evidence_limit,
            )
        for (_, label), output in zip(batch, outputs, strict=True):
            ranked = sorted(output["scores"], key=lambda c: -output["scores"][c])
            results.append(
                ImageResult(
                    input=output["input"],
                    true_label=candidates.classes[label],
                    label=output["label"],
                    top=tuple(ranked[:TOP]),
                    scores=tuple(output["scores"][c] for c in candidates.classes),
                    prediction_id=output["prediction_id"],
                )
            )
            versions.add(output["model_version"])
            usable, method = output["usable_pairs"], output["method"]
        if on_batch is not None:
            on_batch(len(results), len(labelled.images))
    if len(versions) > 1:
        raise Conflict(
            f"the model changed during the evaluation (versions {min(versions)} to "
            f"{max(versions)}: pairs were added, revoked or restored): run it again"
        )
    return Evaluation(
        classes=candidates.classes,
        templates=candidates.templates,
        options=options,
        model_version=versions.pop(),
        usable_pairs=int(usable or 0),
        method=str(method),
        seconds=time.perf_counter() - started,
        predictions=tuple(results),
    )
