"""Experiment 7b: images per second of classification with a warm model (encoders loaded,
anchors and caption representations cached), through `services.evaluation`, the plain image
encoder (nothing remembered), against encoding alone; and one-image latency.

    .venv/bin/python -m asifdb.experiments.throughput
"""

import logging
import os
import statistics
import time

from asifdb.context import Platform
from asifdb.experiments import runner
from asifdb.experiments.anchors_db import ROOTS
from asifdb.experiments.datasets import CIFAR_TEST, TINY_VAL, LabelledSet
from asifdb.services.classify import Options, classify
from asifdb.services.evaluation import evaluate, read_folder
from asifdb.services.labelsets import check

log = logging.getLogger(__name__)


def run(
    platform: Platform,
    sets: tuple[LabelledSet, ...] = (CIFAR_TEST.per_class(100), TINY_VAL.per_class(5)),
    *,
    batch_size: int = 32,
    single: int = 15,
    repeats: int = 3,
    k: int = 800,
    p: float = 8.0,
) -> runner.Result:
    """Per set: batched images/s unrecorded and recorded (all evidence) and encoder-only
    images/s, each the median of `repeats` passes (all kept, with the 1-minute load average
    after each), and the median latency of classifying one image."""
    options = Options(k=k, p=p, aggregation="max")
    out: runner.Result = {
        "k": k,
        "p": p,
        "batch_size": batch_size,
        "repeats": repeats,
        "sets": {},
    }
    for test in sets:

        def timed(record: bool, test: LabelledSet = test) -> float:
            evaluation = evaluate(
                roots=ROOTS,
                sessions=platform.sessions,
                live=platform.live,
                encoders=platform.encoders,
                folder=test.folder,
                templates=test.templates,
                classnames=test.classnames,
                options=options,
                limit_per_class=test.limit_per_class,
                batch_size=batch_size,
                record=record,
            )
            return evaluation.images / evaluation.seconds

        folder = test.read()
        images = [path.read_bytes() for path, _ in folder.images]
        candidates = check(list(folder.classes), test.templates)
        # Warm: anchors loaded, caption embeddings and representations cached.
        warm_started = time.perf_counter()
        timed(False)
        warm_up = time.perf_counter() - warm_started
        rates: dict[str, list[float]] = {"unrecorded": [], "recorded": [], "encoder_only": []}
        loads: dict[str, list[float]] = {name: [] for name in rates}
        for _ in range(repeats):  # interleaved, so a burst of other work hits each alike
            rates["unrecorded"].append(timed(False))
            loads["unrecorded"].append(os.getloadavg()[0])
            rates["recorded"].append(timed(True))
            loads["recorded"].append(os.getloadavg()[0])
            started = time.perf_counter()
            for i in range(0, len(images), batch_size):
                platform.encoders.image.embed_batch(images[i : i + batch_size])
            rates["encoder_only"].append(len(images) / (time.perf_counter() - started))
            loads["encoder_only"].append(os.getloadavg()[0])
        latencies = []
        for path, _ in read_folder(test.folder, roots=ROOTS, limit_per_class=1).images[:single]:
            started = time.perf_counter()
            with platform.sessions.begin() as session:
                classify(
                    session,
                    live=platform.live,
                    encoders=platform.encoders,
                    images=[(path.name, path.read_bytes())],
                    candidates=candidates,
                    options=options,
                    client=None,
                    channel="eval",
                    record=False,
                )
            latencies.append(time.perf_counter() - started)
        out["sets"][test.name] = {
            "images": len(images),
            "prompts": len(candidates.captions),
            "first_pass_seconds_cold_caches": warm_up,
            "images_per_second": statistics.median(rates["unrecorded"]),
            "images_per_second_recorded": statistics.median(rates["recorded"]),
            "encoder_only_images_per_second": statistics.median(rates["encoder_only"]),
            "runs_images_per_second": rates,
            "one_image_latency_ms_median": 1000 * statistics.median(latencies),
            "one_image_latency_ms_max": 1000 * max(latencies),
            "load_average": {**loads, "latency": os.getloadavg()[0]},
        }
        log.info("%s: %s", test.name, out["sets"][test.name])
    return out


if __name__ == "__main__":
    runner.main("throughput", run, remember_images=False)
