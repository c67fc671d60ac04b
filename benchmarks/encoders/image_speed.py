"""Image encoder speed on this CPU, every option side by side, each checked against the reference.

The reference is the stock pipeline: timm's `create_transform` (float), the torch fp32 model.
Each option reports images/s (best and median of interleaved rounds: the machine is shared, and
the best round is the least disturbed), the lowest per-image cosine to the reference, and the
share of images whose nearest other image (the anchor lookup ASIF does) is the reference's.
Allocator settings are read by glibc at process start, so each runs in a child process.

    .venv/bin/python benchmarks/encoders/image_speed.py [--rounds 5] [--seconds 2] [--images 256]
        [--quick] [--no-compilers] [--allocators N]

`--quick` measures the short list (torch fp32, OpenVINO f32 batch 8, the encoder on JPEG bytes
with either runtime) and the compute limit; `--no-compilers` skips torch.jit and torch.compile
(minutes of set-up on a loaded machine, and never near OpenVINO); `--allocators 2` measures
only `runtime_env()` against glibc's default.
"""

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openvino as ov
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config
from torch.utils.flop_counter import FlopCounterMode

from asifdb.encoders import efficientnet_lite, get_encoder, runtime_env

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "tiny-imagenet-pairs-wds"
ALLOCATORS = {
    "runtime_env()": runtime_env(),
    "glibc default": {},
    "published (mmap+trim 4 GiB)": {
        "MALLOC_MMAP_THRESHOLD_": "4294967296",
        "MALLOC_TRIM_THRESHOLD_": "4294967296",
    },
    "trim 4 GiB only": {"MALLOC_TRIM_THRESHOLD_": "4294967296"},
    "mmap 32 MiB + trim 4 GiB": {
        "MALLOC_MMAP_THRESHOLD_": "33554432",
        "MALLOC_TRIM_THRESHOLD_": "4294967296",
    },
}

# An option: label, batch size, function, and whether it takes JPEG bytes (the encoder, end to
# end) or preprocessed float NCHW tensors (the model alone).
Option = tuple[str, int, Callable, bool]


def _jpegs(n: int) -> list[bytes]:
    out: list[bytes] = []
    with tarfile.open(DATA / "00000.tar") as tar:
        for member in tar:
            if member.name.endswith(".jpg"):
                out.append(tar.extractfile(member).read())  # type: ignore[union-attr]
                if len(out) == n:
                    break
    return out


def _agreement(emb: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)

    def nearest(e: np.ndarray) -> np.ndarray:
        sims = e @ e.T
        np.fill_diagonal(sims, -np.inf)
        return sims.argmax(axis=1)

    return float(np.min(np.sum(emb * ref, axis=1))), float(np.mean(nearest(emb) == nearest(ref)))


def _rate(fn: Callable[[], object], items: int, seconds: float) -> float:
    fn()
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return items * calls / (time.perf_counter() - start)


def _note(text: str) -> None:
    print(f"- {text}", flush=True)


def _lite0(memory_format: torch.memory_format = torch.contiguous_format) -> torch.nn.Module:
    lite0 = efficientnet_lite.VARIANTS[0]
    model = timm.create_model(lite0.architecture, pretrained=False, num_classes=0)
    efficientnet_lite.load_packaged_weights(model, lite0)
    return model.eval().to(memory_format=memory_format)


def _torch_options(model: torch.nn.Module, full: bool) -> list[Option]:
    def no_grad(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model(x).numpy()

    def inference(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(x).numpy()

    if not full:
        return [("torch fp32, batch 32", 32, no_grad, False)]
    model_cl = _lite0(torch.channels_last)

    def channels_last(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model_cl(x.contiguous(memory_format=torch.channels_last)).numpy()

    def bf16(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model_cl(x.contiguous(memory_format=torch.channels_last)).float().numpy()

    return [
        *[(f"torch fp32, batch {b}", b, no_grad, False) for b in (1, 8, 32, 64)],
        ("torch fp32, inference_mode, batch 32", 32, inference, False),
        ("torch fp32, inference_mode, channels_last, batch 32", 32, channels_last, False),
        ("torch bf16 autocast (AMX), channels_last, batch 32", 32, bf16, False),
    ]


def _jit_options(model: torch.nn.Module, example: torch.Tensor) -> list[Option]:
    t = time.perf_counter()
    with torch.no_grad():
        traced = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(model, example).eval())
        )
    _note(f"torch.jit trace+freeze+optimize_for_inference: {time.perf_counter() - t:.1f} s")

    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return traced(x).numpy()

    return [("torch.jit trace+freeze+optimize_for_inference, batch 32", 32, run, False)]


def _compile_options(model: torch.nn.Module, example: torch.Tensor) -> list[Option]:
    compiled = torch.compile(model, dynamic=False)
    t = time.perf_counter()
    with torch.inference_mode():
        compiled(example)
    _note(f"torch.compile (inductor) first call, batch 32: {time.perf_counter() - t:.1f} s")

    def run(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return compiled(x).numpy()

    return [("torch.compile (inductor, static shapes), batch 32", 32, run, False)]


def _onnxruntime_options(model: torch.nn.Module, example: torch.Tensor) -> list[Option]:
    try:
        # Not a dependency of the platform (it lost to OpenVINO): measured where installed.
        import onnxruntime as ort
    except ImportError:
        _note("ONNX Runtime not installed: skipped (`pip install onnxruntime` to measure it)")
        return []
    path = Path(tempfile.mkdtemp()) / "lite0.onnx"
    torch.onnx.export(
        model,
        (example,),
        path,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n"}},
        dynamo=False,
        opset_version=17,
    )
    settings = ort.SessionOptions()
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    settings.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(path), settings, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> np.ndarray:
        return session.run(None, {"x": x.numpy()})[0]

    return [(f"ONNX Runtime {ort.__version__} fp32, batch {b}", b, run, False) for b in (8, 32)]


def _openvino_options(model: torch.nn.Module, example: torch.Tensor, full: bool) -> list[Option]:
    t = time.perf_counter()
    converted = ov.convert_model(
        model, example_input=example, input=[ov.PartialShape([-1, 3, 224, 224])]
    )
    _note(f"openvino convert_model: {time.perf_counter() - t:.1f} s")
    plans = [("f32", "LATENCY", (1, 8, 32) if full else (8,))]
    if full:
        plans += [("f32", "THROUGHPUT", (8,)), ("bf16", "LATENCY", (8, 32))]
    out: list[Option] = []
    for precision, hint, sizes in plans:
        compiled = ov.Core().compile_model(
            converted, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint}
        )
        request = compiled.create_infer_request()

        def run(x: torch.Tensor, r: ov.InferRequest = request) -> np.ndarray:
            return r.infer({0: x.numpy()}, share_inputs=True)[0].copy()

        label = f"OpenVINO {ov.__version__} {precision} {hint.lower()}"
        out += [(f"{label}, batch {b}", b, run, False) for b in sizes]
    return out


def _encoder_options(jpegs: list[bytes], full: bool) -> list[Option]:
    cache = Path(tempfile.mkdtemp())
    for what in ("first build", "from the cache"):
        t = time.perf_counter()
        encoder = get_encoder("tf_efficientnet_lite0", runtime="openvino", cache_dir=cache)
        encoder.embed_batch(jpegs[:1])
        _note(f"OpenVINO encoder, first call ({what}): {time.perf_counter() - t:.1f} s")
    plans = [("openvino", 8), ("torch", 32)]
    if full:
        plans = [(r, b) for r in ("openvino", "torch") for b in (1, 8, 32)]
    out: list[Option] = []
    for runtime, size in plans:
        encoder = get_encoder(
            "tf_efficientnet_lite0", runtime=runtime, device="cpu", batch_size=size, cache_dir=cache
        )
        encoder.embed_batch(jpegs[:1])
        out.append(
            (
                f"**encoder, JPEG bytes in: {runtime}, batch {size}**",
                size,
                encoder.embed_batch,
                True,
            )
        )
    return out


def child(
    full: bool, rounds: int, seconds: float, n_images: int, compilers: bool, quick: bool = False
) -> None:
    """Measure every option in this process; print a markdown table."""
    jpegs = _jpegs(n_images)
    model = _lite0()
    transform = create_transform(**resolve_data_config({}, model=model))
    inputs = torch.stack([transform(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs])
    with torch.no_grad():
        reference = torch.cat([model(inputs[i : i + 32]) for i in range(0, n_images, 32)]).numpy()
    options = _torch_options(model, full)
    if full and compilers:
        options += _jit_options(model, inputs[:32])
        options += _compile_options(model, inputs[:32])
    if full:
        options += _onnxruntime_options(model, inputs[:1])
    options += _openvino_options(model, inputs[:1], full)
    options += _encoder_options(jpegs, full)

    quality: dict[str, tuple[float, float]] = {}
    for label, size, fn, takes_bytes in options:
        if takes_bytes:
            emb = fn(jpegs)
        else:
            emb = np.concatenate([fn(inputs[i : i + size]) for i in range(0, n_images, size)])
        quality[label] = _agreement(emb, reference)
    rates: dict[str, list[float]] = {label: [] for label, *_ in options}
    for round_ in range(rounds):
        for label, size, fn, takes_bytes in options:
            # At least 32 images a call, so that batch 1 and batch 32 are timed alike.
            reps = max(1, 32 // size)
            arg = jpegs[:size] if takes_bytes else inputs[:size].clone()
            rates[label].append(
                _rate(lambda f=fn, a=arg, n=reps: [f(a) for _ in range(n)], size * reps, seconds)
            )
            # As it goes: on a loaded machine a run may be cut before the table.
            _note(f"round {round_ + 1}: {label}: {rates[label][-1]:.1f} img/s")
    print("\n| option | img/s best | img/s median | min cosine | same nearest |", flush=True)
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, *_ in options:
        cosine, same = quality[label]
        print(
            f"| {label} | {max(rates[label]):.1f} | {np.median(rates[label]):.1f} | "
            f"{cosine:.7f} | {100 * same:.1f}% |",
            flush=True,
        )
    if full or quick:
        print("\n### compute limit", flush=True)
        compute_limit(
            max(max(r) for label, r in rates.items() if "OpenVINO" in label and " f32 " in label)
        )


def compute_limit(best: float) -> None:
    """FLOPs per image, measured matmul peaks, and what share of the peak `best` img/s is."""
    model = _lite0()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.randn(1, 3, 224, 224))
    gflop = counter.get_total_flops() / 1e9
    _note(f"model: {gflop:.3f} GFLOP per 224x224 image (2 x multiply-adds)")
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        peak = _rate(lambda a=a, b=b: a @ b, 1, 3.0) * 2 * 2048**3 / 1e9
        _note(f"measured peak, {dtype} 2048x2048 matmul: {peak:.0f} GFLOP/s")
        if dtype == torch.float32:
            used = best * gflop
            _note(
                f"at {best:.0f} img/s the model does {used:.0f} GFLOP/s = "
                f"{100 * used / peak:.0f}% of the fp32 peak; the ceiling at that peak would be "
                f"{peak / gflop:.0f} img/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--images", type=int, default=256, help="real images for accuracy")
    parser.add_argument("--no-compilers", action="store_true", help="skip torch.jit, compile")
    parser.add_argument(
        "--quick", action="store_true", help="the main options and the compute limit only"
    )
    parser.add_argument("--allocators", type=int, default=len(ALLOCATORS), help="the first N")
    parser.add_argument("--child", choices=["full", "short"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.child:
        child(
            args.child == "full",
            args.rounds,
            args.seconds,
            args.images,
            not args.no_compilers,
            args.quick,
        )
        return
    print(f"{os.cpu_count()} cores; torch {torch.__version__}, timm {timm.__version__}")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    for i, (allocator, env) in enumerate(list(ALLOCATORS.items())[: args.allocators]):
        print(f"\n### allocator: {allocator} {env}", flush=True)
        _note(f"load average before: {os.getloadavg()[0]:.2f}")
        subprocess.run(
            [sys.executable, __file__, "--child", "full" if i == 0 and not args.quick else "short"]
            + ["--rounds", str(args.rounds), "--seconds", str(args.seconds)]
            + ["--images", str(args.images)]
            + (["--no-compilers"] if args.no_compilers else [])
            + (["--quick"] if args.quick else []),
            env={**base_env, **env, "HF_HUB_OFFLINE": "1"},
            check=True,
        )
    _note(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
