"""The machine's limits for the engine benchmarks: read bandwidth and matmul peak per dtype.

bench_scale.py and bench_vs_dense.py call it, so each table says what its hardware allows.
"""

import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls after one warm-up call."""
    fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def read_bandwidth() -> float:
    """GB/s reading a 2 GiB float32 tensor once (torch sum, all threads), median of 5.

    STREAM-like: one pass over far more than the caches, nothing written back.
    """
    x = torch.ones(512 * 1024 * 1024)
    return x.numel() * 4 / median_time(x.sum, 5) / 1e9


def matmul_peak(dtype: torch.dtype) -> float:
    """GFLOP/s (GOP/s for int8) of square matmuls in `dtype`, median of 3, at the largest
    size that runs fast.

    Starts at 512 and doubles to 4096 while one product takes under a second, so a dtype the
    CPU has no fast path for (bfloat16 without AVX512-BF16 or AMX) is measured, not waited on.
    """
    size, rate = 512, 0.0
    while size <= 4096:
        if dtype == torch.int8:  # integer products (int32 sums): what the int8 scan runs
            a = torch.randint(-127, 128, (size, size), dtype=torch.int8)
            b = torch.randint(-127, 128, (size, size), dtype=torch.int8)
            product = partial(torch._int_mm, a, b)
        else:
            a = torch.randn(size, size).to(dtype)
            b = torch.randn(size, size).to(dtype)
            product = partial(torch.matmul, a, b)
        seconds = median_time(product, 3)
        rate = 2 * size**3 / seconds / 1e9
        if seconds > 1.0:
            break
        size *= 2
    return rate


def describe() -> str:
    """One line: CPU, threads, torch, SIMD level, load average."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )


def bfloat16_is_fast(peak: dict[torch.dtype, float]) -> bool:
    """Whether a bfloat16 scan can pay: its matmul at least as fast as float32's."""
    return peak[torch.bfloat16] >= peak[torch.float32]
