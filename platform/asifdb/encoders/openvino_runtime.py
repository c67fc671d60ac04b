"""OpenVINO build of a torch image graph for CPU inference: converted on first use, cached on
disk when a folder is given, and checked against torch before every use. Used by `timm_image`."""

import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from asifdb.encoders.protocol import EncoderError

log = logging.getLogger(__name__)

# Embeddings must be the torch fp32 ones within float rounding: measured at 1 - 6e-8.
MIN_COSINE = 0.99999
_PROBE_IMAGES = 4
_CONFIG = {
    # fp32: on CPUs with AMX or AVX512-BF16, OpenVINO's default precision is bf16, whose
    # embeddings drift to cosine ~0.9997 from the torch ones; those are not the same model.
    "INFERENCE_PRECISION_HINT": "f32",
    # One stream over all cores: `embed_batch` runs one request at a time.
    "PERFORMANCE_HINT": "LATENCY",
}

Runner = Callable[[np.ndarray], np.ndarray]


def compile_for_cpu(
    graph: torch.nn.Module, *, key: str, input_shape: tuple[int, int, int], cache_dir: Path | None
) -> Runner:
    """A function running `graph` (uint8 NCHW pixels -> float features) on OpenVINO's CPU plugin.

    The IR is read from `cache_dir` when there, else converted from `graph` and saved there.
    Either way its output on fixed probe pixels must match torch's (cosine >= MIN_COSINE per
    image); a stale cache is rebuilt, a conversion that disagrees raises `EncoderError`.
    """
    probe = np.random.default_rng(0).integers(0, 256, (_PROBE_IMAGES, *input_shape), np.uint8)
    with torch.inference_mode():
        expected = graph(torch.from_numpy(probe)).numpy()
    core = ov.Core()
    folder = cache_dir / _slug(f"{key}.openvino-{ov.__version__}") if cache_dir else None
    if folder is not None and (folder / "model.xml").exists():
        compiled = core.compile_model(folder / "model.xml", "CPU", _CONFIG)
        if _min_cosine(compiled(probe)[0], expected) >= MIN_COSINE:
            return _runner(compiled)
        log.warning("cached OpenVINO model %s disagrees with torch: rebuilding it", folder)
        shutil.rmtree(folder)
    with warnings.catch_warnings():
        # OpenVINO converts through torch.jit.trace, which torch flags as deprecated: a note
        # about OpenVINO's internals that would otherwise reach every worker's log.
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
        model = ov.convert_model(
            graph,
            example_input=torch.from_numpy(probe[:1]),
            input=[ov.PartialShape([-1, *input_shape])],
        )
    compiled = core.compile_model(model, "CPU", _CONFIG)
    agreement = _min_cosine(compiled(probe)[0], expected)
    if agreement < MIN_COSINE:
        raise EncoderError(
            f"OpenVINO's build of {key} disagrees with torch (cosine {agreement:.6f} < "
            f"{MIN_COSINE}): run this encoder with runtime='torch'"
        )
    if folder is not None:
        _save(model, folder)
    return _runner(compiled)


def _runner(compiled: ov.CompiledModel) -> Runner:
    request = compiled.create_infer_request()

    def run(pixels: np.ndarray) -> np.ndarray:
        return request.infer({0: pixels}, share_inputs=True, share_outputs=False)[0]

    return run


def _save(model: ov.Model, folder: Path) -> None:
    # Written aside and renamed: a worker that dies mid-write, or two workers building at
    # once, never leave a half-written model where the next process would read it.
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    ov.save_model(model, scratch / "model.xml", compress_to_fp16=False)
    try:
        os.rename(scratch, folder)
    except OSError:
        shutil.rmtree(scratch)
        if not (folder / "model.xml").exists():
            raise


def _min_cosine(got: np.ndarray, expected: np.ndarray) -> float:
    dots = np.sum(got * expected, axis=1)
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    return float(np.min(dots / norms))


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)
