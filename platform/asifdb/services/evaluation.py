"""Accuracy of the live model on a labelled folder (one sub-folder of images per class).

Every image goes through `services.classify`, batch by batch; `asifdb eval` and the published
results (docs/results.md) call `evaluate`.
"""

import io
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session, sessionmaker

from asifdb.anchors.live import LiveModel
from asifdb.errors import Conflict, InvalidInput, TooLarge
from asifdb.ingest.class_folders import class_name
from asifdb.ingest.local_files import IMAGE, LocalFileError, read_file
from asifdb.ingest.roots import inside, locate, relative
from asifdb.ingest.sources import read_classnames
from asifdb.prompts import TEMPLATE_SETS
from asifdb.schemas.evaluation import EvaluationSummary
from asifdb.services import labelsets, models
from asifdb.services.classify import MAX_IMAGES, Options, classify
from asifdb.services.collection import stage_class_folders
from asifdb.services.model import Encoders
from asifdb.services.uploads import UploadLimits

TOP = 5
# An image file read from a labelled folder (as ingestion's default limit), a templates file.
MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_TEMPLATES_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LabelledFolder:
    """A labelled folder under its root: class names (sorted by folder) and each image's path
    with its class index. Images are read when used, through local_files."""

    root: Path
    folder: Path
    classes: tuple[str, ...]
    images: tuple[tuple[Path, int], ...]

    @property
    def labels(self) -> tuple[int, ...]:
        return tuple(label for _, label in self.images)

    def name(self, path: Path) -> str:
        """How results name an image: its path in the folder (`class/file`)."""
        return relative(path, self.folder)

    def read(self, path: Path) -> bytes:
        """An image's bytes; InvalidInput, naming it relative to the root, if it is refused
        (not a regular file under the root), over MAX_IMAGE_BYTES or not an image (its header
        only: decoding is the encoder's)."""
        try:
            data = read_file(path, root=self.root, limit=MAX_IMAGE_BYTES, role=IMAGE)
        except LocalFileError as error:
            raise InvalidInput(str(error)) from None
        return check_image(data, self.name(path))

    def batches(self, size: int) -> Iterator[list[tuple[str, bytes]]]:
        """The images, `size` at a time, each with its name."""
        for start in range(0, len(self.images), size):
            yield [(self.name(p), self.read(p)) for p, _ in self.images[start : start + size]]


@dataclass(frozen=True)
class LabelledImages:
    """Uploaded labelled images: class names and each image's name, bytes and class index."""

    classes: tuple[str, ...]
    images: tuple[tuple[str, bytes, int], ...]

    @property
    def labels(self) -> tuple[int, ...]:
        return tuple(label for _, _, label in self.images)

    def batches(self, size: int) -> Iterator[list[tuple[str, bytes]]]:
        for start in range(0, len(self.images), size):
            yield [(name, data) for name, data, _ in self.images[start : start + size]]


# What pair value and evaluation take: a folder under the roots, or uploads.
Labelled = LabelledFolder | LabelledImages


def labelled_uploads(
    files: Sequence[tuple[str, bytes]], classes: Sequence[str], *, max_images: int
) -> LabelledImages:
    """Uploaded images, each with its class name (one per image, in order), as a labelled set:
    at most `max_images` (TooLarge), each a readable image header (InvalidInput, naming it).
    Classes are sorted by name, as a folder's are."""
    if len(files) != len(classes):
        raise InvalidInput(
            f"{len(files)} images but {len(classes)} classes: send one class per image"
        )
    if len(files) > max_images:
        raise TooLarge(f"{len(files):,} images: at most {max_images:,} (MAX_VALUE_IMAGES)")
    names = [c.strip() for c in classes]
    if not all(names):
        raise InvalidInput("every image needs a class: a blank one was sent")
    order = sorted(set(names))
    if len(order) > labelsets.MAX_CLASSES:
        raise InvalidInput(f"{len(order)} classes: at most {labelsets.MAX_CLASSES}")
    index = {name: i for i, name in enumerate(order)}
    images = tuple(
        (name, check_image(data, name), index[label])
        for (name, data), label in zip(files, names, strict=True)
    )
    return LabelledImages(tuple(order), images)


@contextmanager
def labelled_archive(
    archive: bytes, *, uploads_dir: Path, max_images: int, limits: UploadLimits
) -> Iterator[LabelledFolder]:
    """An uploaded zip of class folders (`<class>/<image>`) as a labelled folder, unpacked
    within `limits` (at most `max_images` files) into a new folder of `uploads_dir` that is
    removed when the block ends."""
    bounded = replace(limits, max_files=min(limits.max_files, max_images))
    folder = stage_class_folders(uploads_dir=uploads_dir, archive=archive, limits=bounded)
    try:
        yield read_folder(folder, roots=[uploads_dir], max_images=max_images)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_image(data: bytes, name: str) -> bytes:
    """`data` if its header is an image's, else InvalidInput naming `name` (never the bytes)."""
    try:
        Image.open(io.BytesIO(data)).close()
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput(
            f"{name} is not an image: a labelled set holds one class of images each"
        ) from None
    return data


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

    def summary(self) -> EvaluationSummary:
        """The figures, without the per-image predictions (what `asifdb eval --json` prints)."""
        return EvaluationSummary(
            images=self.images,
            classes=len(self.classes),
            templates=len(self.templates),
            top1=self.top1,
            top5=self.top5,
            chance=self.chance,
            per_class=self.per_class,
            k=self.options.k,
            p=self.options.p,
            aggregation=self.options.aggregation,
            method=self.method,
            model_version=self.model_version,
            usable_pairs=self.usable_pairs,
            seconds=self.seconds,
            images_per_second=self.images / self.seconds if self.seconds else None,
        )


def read_folder(
    folder: Path | str,
    *,
    roots: Sequence[Path | str],
    classnames: Path | str | None = None,
    limit_per_class: int | None = None,
    max_images: int | None = None,
) -> LabelledFolder:
    """The classes and images of `folder/<class>/<image>`, in sorted order, if `folder` (and
    the `classnames` file) lie under one of `roots` (SOURCE_ROOTS): Forbidden otherwise.

    `classnames` is a file of `folder<TAB>name` lines (e.g. wnid -> name); folders it does not
    name are named by their folder, underscores as spaces (as class-folder ingest names them).
    `limit_per_class` keeps the first images of each class, by file name; past `max_images`
    images in all, TooLarge before any is read. Messages name paths relative to the root.
    """
    located = locate(folder, roots=roots, what="folder")
    root, shown = located.root, located.relative
    if not located.path.is_dir():
        raise InvalidInput(f"{shown} is not a folder: give a folder with one sub-folder per class")
    if limit_per_class is not None and limit_per_class < 1:
        raise InvalidInput(f"limit per class {limit_per_class}: use at least 1")
    names = {} if classnames is None else read_classnames(classnames, roots=roots)
    # Everything cheap is checked before any image is read or encoded: a folder that is not
    # one of class sub-folders of images is refused after a listing and one file's header.
    try:
        class_dirs = sorted(
            d
            for d in located.path.iterdir()
            if d.is_dir() and not d.name.startswith(".") and inside(root, d)
        )
        if len(class_dirs) > labelsets.MAX_CLASSES:
            raise InvalidInput(
                f"{shown} has {len(class_dirs)} sub-folders: at most {labelsets.MAX_CLASSES} "
                "classes, one sub-folder a class"
            )
        images: list[tuple[Path, int]] = []
        for label, class_dir in enumerate(class_dirs):
            files = sorted(
                f for f in class_dir.iterdir() if not f.is_dir() and not f.name.startswith(".")
            )
            images.extend((f, label) for f in files[:limit_per_class])
    except OSError as error:
        raise InvalidInput(f"cannot list {shown}: {error.strerror}") from None
    if not images:
        raise InvalidInput(f"{shown} holds no images in class sub-folders")
    if max_images is not None and len(images) > max_images:
        raise TooLarge(
            f"the folder has {len(images):,} images: at most {max_images:,} "
            "(MAX_VALUE_IMAGES); pass a limit per class"
        )
    labelled = LabelledFolder(
        root, located.path, tuple(class_name(d.name, names) for d in class_dirs), tuple(images)
    )
    labelled.read(images[0][0])
    return labelled


def read_templates(value: str, *, roots: Sequence[Path | str]) -> str | list[str]:
    """A built-in template set's name as it is, else the templates of a file under `roots`,
    one a line (blank lines and lines starting with # skipped); `labelsets.check` validates
    either."""
    if value in TEMPLATE_SETS:
        return value
    located = locate(
        value, roots=roots, what=f"templates: not a built-in set ({', '.join(TEMPLATE_SETS)}), so"
    )
    try:
        data = read_file(located.path, root=located.root, limit=MAX_TEMPLATES_BYTES)
        lines = data.decode("utf-8").splitlines()
    except LocalFileError as error:
        raise InvalidInput(
            f"templates: name a built-in set ({', '.join(TEMPLATE_SETS)}) or give a file of "
            f"templates, one a line, each containing {{}} ({error})"
        ) from None
    except UnicodeDecodeError as error:
        raise InvalidInput(f"templates file is not UTF-8 (byte {error.start})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def evaluate(
    *,
    sessions: sessionmaker[Session],
    live: LiveModel,
    encoders: Encoders,
    folder: Path | str,
    roots: Sequence[Path | str],
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
    """Classify every image of a labelled folder under `roots` (SOURCE_ROOTS) among its
    classes; top-1/top-5 accuracy.

    Each batch is one `classify` call in its own transaction (recorded predictions are kept as
    they are made). Raises Conflict if the model changed while the folder was classified: the
    figures would mix two models. `on_batch(done, total)` reports progress.
    """
    if not 1 <= batch_size <= MAX_IMAGES:
        raise InvalidInput(f"batch size {batch_size}: use 1 to {MAX_IMAGES}")
    with sessions() as session:
        models.require(session, live.model, encoders)  # before the folder; classify too
    options = options or Options()
    labelled = read_folder(
        folder, roots=roots, classnames=classnames, limit_per_class=limit_per_class
    )
    candidates = labelsets.check(list(labelled.classes), templates)
    started = time.perf_counter()
    results: list[ImageResult] = []
    versions: set[int] = set()
    usable = method = None
    for start, images in zip(
        range(0, len(labelled.images), batch_size), labelled.batches(batch_size), strict=True
    ):
        batch = labelled.images[start : start + batch_size]
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
            ranked = sorted(output.scores, key=lambda c: -output.scores[c])
            results.append(
                ImageResult(
                    input=output.input,
                    true_label=candidates.classes[label],
                    label=output.label,
                    top=tuple(ranked[:TOP]),
                    scores=tuple(output.scores[c] for c in candidates.classes),
                    prediction_id=output.prediction_id,
                )
            )
            versions.add(output.model_version)
            usable, method = output.usable_pairs, output.method
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
