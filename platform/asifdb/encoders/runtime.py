"""Environment for processes that run encoders. glibc reads it only at process start, so the
launchers (`asifdb up`, docker-compose, Celery) merge `runtime_env()` into a worker's env."""

# A forward pass allocates and frees the same large activation buffers on every call. glibc's
# default returns freed memory at the top of the heap to the kernel (trim threshold 128 KiB,
# grown dynamically), so the next pass page-faults and zero-fills it all again. A trim
# threshold of 4 GiB keeps it in the heap. (glibc ignores an mmap threshold above 32 MiB, so
# buffers larger than that are still mapped per call; the value is kept as published.)
_GLIBC_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}


def runtime_env() -> dict[str, str]:
    """Environment variables to set for a process that runs encoders, before it starts."""
    return dict(_GLIBC_MALLOC)
