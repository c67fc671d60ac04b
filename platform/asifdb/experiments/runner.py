"""What every experiment script does around its `run`: encoders, a fresh platform, the clock,
and writing `benchmarks/accuracy/results/<name>.json` and `docs/img/results-<name>.png`."""

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asifdb.context import Platform
from asifdb.encoders import get_encoder
from asifdb.experiments.anchors_db import (
    REPO,
    ROOT,
    SHARED_DATA,
    anchors_ingest,
    experiment_platform,
)
from asifdb.experiments.memo_encoder import MemoImageEncoder
from asifdb.services.model import Encoders
from asifdb.settings import Settings

IMG = REPO / "docs" / "img"

Result = dict[str, Any]


def results_dir(area: str = "accuracy") -> Path:
    """Where an area's benchmarks and experiments keep their JSON (one layout for all)."""
    return REPO / "benchmarks" / area / "results"


def default_encoders() -> tuple[Encoders, MemoImageEncoder]:
    """The platform's default encoders, loaded now; the image one remembers test images."""
    settings = Settings()
    image = MemoImageEncoder(get_encoder(settings.image_encoder), ROOT / "memo-images.npz")
    text = get_encoder(settings.text_encoder)
    # Load both models now, not inside an experiment's first timing.
    image.embed_batch([(SHARED_DATA / "cifar10" / "test" / "cat" / "0000.png").read_bytes()])
    text.embed_batch(["a photo of a cat."])
    return Encoders(image=image, text=text), image


def main(
    name: str,
    run: Callable[[Platform], Result],
    plot: Callable[[Result, Path], None] | None = None,
    *,
    remember_images: bool = True,
    area: str = "accuracy",
) -> Result:
    """Run one experiment on a fresh clone of the anchors database and publish its outputs.

    `remember_images` False gives the platform the plain image encoder (for timings)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    encoders, memo = default_encoders()
    loaded = time.perf_counter()
    anchors = anchors_ingest(encoders)
    if not remember_images:
        encoders = Encoders(image=memo.encoder, text=encoders.text)
    platform = experiment_platform(name, encoders)
    try:
        result = run(platform)
    finally:
        platform.close()
        memo.save()
    result["timing"] = {
        "wall_seconds": round(time.perf_counter() - loaded, 1),
        "encoder_load_seconds": round(loaded - started, 1),
        "images_encoded_this_run": memo.computed,
        "load_average_at_end": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    result["anchors"] = anchors
    out = results_dir(area)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    if plot is not None:
        IMG.mkdir(parents=True, exist_ok=True)
        plot(result, IMG / f"results-{name.replace('_', '-')}.png")
    logging.getLogger(name).info("done in %.0f s", result["timing"]["wall_seconds"])
    return result
