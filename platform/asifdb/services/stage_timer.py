"""Seconds spent per stage of a worker's batch (read, encode, database...), kept on the batch row
so that a slow ingestion or re-encode says where its time went. Used by ingestion and reencode."""

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Adds up wall-clock seconds per named stage; `seconds()` is what the batch row stores."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - start

    def seconds(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in self._seconds.items()}

    def summary(self) -> str:
        return ", ".join(f"{name} {value:.2f} s" for name, value in self._seconds.items())
