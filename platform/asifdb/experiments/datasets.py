"""The labelled test sets of docs/results.md, and their embeddings by the platform's encoders.

Experiment scripts name a `LabelledSet`; the integration tests pass small copies instead.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from asifdb.anchors.live import LiveModel
from asifdb.context import Platform
from asifdb.experiments.anchors_db import ROOTS, SHARED_DATA
from asifdb.prompts import TEMPLATE_SETS
from asifdb.services import labelsets
from asifdb.services.classify import Options
from asifdb.services.evaluation import Evaluation, LabelledFolder, evaluate, read_folder
from asifdb.services.model import Encoders


@dataclass(frozen=True)
class LabelledSet:
    """A folder of class folders, the templates its prompts use, and how to name its classes."""

    name: str
    folder: Path
    templates: str
    classnames: Path | None = None
    limit_per_class: int | None = None

    def read(self) -> LabelledFolder:
        return read_folder(
            self.folder,
            roots=ROOTS,
            classnames=self.classnames,
            limit_per_class=self.limit_per_class,
        )

    def per_class(self, limit: int | None) -> "LabelledSet":
        return replace(self, limit_per_class=limit)

    def evaluate(
        self,
        platform: Platform,
        options: Options,
        *,
        live: LiveModel | None = None,
        encoders: Encoders | None = None,
        record: bool = False,
        client: str | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> Evaluation:
        """This set through `services.evaluation` on the platform's default model (or `live`
        with `encoders`: a named model's), as the API's eval runs it."""
        return evaluate(
            roots=ROOTS,
            sessions=platform.sessions,
            live=platform.live if live is None else live,
            encoders=platform.encoders if encoders is None else encoders,
            folder=self.folder,
            templates=self.templates,
            classnames=self.classnames,
            options=options,
            limit_per_class=self.limit_per_class,
            record=record,
            client=client,
            on_batch=on_batch,
        )


CIFAR_TEST = LabelledSet("CIFAR-10 test", SHARED_DATA / "cifar10" / "test", "cifar")
CIFAR_TRAIN = SHARED_DATA / "cifar10" / "train"
TINY_VAL = LabelledSet(
    "Tiny-ImageNet val",
    SHARED_DATA / "tiny-imagenet" / "val",
    "imagenet",
    SHARED_DATA / "tiny-imagenet" / "classnames.txt",
)


@dataclass(frozen=True)
class Embedded:
    """A test set through the platform's encoders: images, labels and class-major prompts."""

    name: str
    classes: tuple[str, ...]
    inputs: tuple[str, ...]  # class_folder/file, as `evaluate` names each image
    labels: np.ndarray  # (n,) int64
    images: np.ndarray  # (n, d_image) float32, unit rows
    prompts: np.ndarray  # (classes * templates, d_text) float32, unit rows
    n_templates: int


def embed(platform: Platform, labelled: LabelledSet) -> Embedded:
    """Encode a test set's images and prompts with the platform's encoders (batches of 256)."""
    folder = labelled.read()
    templates = TEMPLATE_SETS[labelled.templates]
    candidates = labelsets.check(list(folder.classes), labelled.templates)
    paths = [path for path, _ in folder.images]
    images = np.concatenate(
        [
            platform.encoders.image.embed_batch([p.read_bytes() for p in paths[i : i + 256]])
            for i in range(0, len(paths), 256)
        ]
    )
    return Embedded(
        name=labelled.name,
        classes=folder.classes,
        inputs=tuple(str(p.relative_to(labelled.folder)) for p in paths),
        labels=np.array([label for _, label in folder.images], dtype=np.int64),
        images=images,
        prompts=platform.live.caption_embeddings(
            tuple(candidates.captions), platform.encoders.text
        ),
        n_templates=len(templates),
    )
