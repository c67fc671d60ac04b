"""Environment for processes that run encoders. glibc reads it only at process start, so the
launchers (`asifdb up`, docker-compose, Celery) merge `runtime_env()` into a worker's env."""

# A forward pass allocates and frees the same large activation buffers on every call. glibc
# serves blocks above its mmap threshold (128 KiB, raised dynamically to at most 32 MiB) with
# fresh mappings and unmaps them on free, and trims the heap top past 128 KiB, so every pass
# page-faults and zero-fills its buffers again (EfficientNet-Lite0 at batch 32 has 51 MB ones).
# With both thresholds at 4 GiB every buffer stays in the heap and is reused (checked with
# mallinfo2: a 40 MB block is heap, not mapped). The trim threshold alone does not do it: it
# freezes the mmap threshold at 128 KiB. Figures: docs/benchmarks-encoders.md.
_GLIBC_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}


def runtime_env() -> dict[str, str]:
    """Environment variables to set for a process that runs encoders, before it starts."""
    return dict(_GLIBC_MALLOC)
