"""Real sources for tests: samples of the shared webdataset, plus bad items beside them."""

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from asifdb.context import Platform
    from asifdb.ingest import Source

# SOURCE_ROOTS for the suite: its sources lie in pytest's temporary folders or the real data.
# tests/conftest.py sets SOURCE_ROOTS for the run; a benchmark importing this module has its own.
TEST_ROOTS = tuple(
    Path(root)
    for root in json.loads(os.environ.get("SOURCE_ROOTS") or "[]")
    or [tempfile.gettempdir(), Path(__file__).resolve().parents[2] / "shared/data"]
)


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def copy_samples(shared_data: Path, out: tarfile.TarFile, n: int, offset: int = 0) -> list[str]:
    """Copy n real samples (jpg, txt, json) of the default collection's first shard."""
    keys: list[str] = []
    with tarfile.open(shared_data / "tiny-imagenet-pairs-wds" / "00000.tar") as src:
        members = {m.name: m for m in src.getmembers()}
        stems = sorted({name.rsplit(".", 1)[0] for name in members})[offset : offset + n]
        for stem in stems:
            for ext in ("jpg", "txt", "json"):
                member = members[f"{stem}.{ext}"]
                data = src.extractfile(member).read()  # type: ignore[union-attr]
                add_member(out, member.name, data)
            keys.append(stem)
    return keys


BAD = {
    "bad0001": ("jpg", b"\xff\xd8\xff\xe0 this is not really a jpeg", "a corrupt photo"),
    "bad0002": ("jpg", b"", "a zero-byte file"),
    "bad0003": ("jpg", None, "   "),  # a real image, an empty caption
    "bad0004": ("jpg", b"plain text, renamed to .jpg\n", "a text file"),
}


def real_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def cifar_subset(shared_data: Path, out: Path, split: str, per_class: int) -> Path:
    """A class-folder copy of the first `per_class` CIFAR-10 images of each class."""
    for folder in sorted((shared_data / "cifar10" / split).iterdir()):
        target = out / folder.name
        target.mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_class]:
            (target / image.name).write_bytes(image.read_bytes())
    return out


def ingest_now(
    platform: "Platform", source: Path, licence: str, *, actor: str = "test", **options: object
) -> None:
    """Ingest `source` under a new licence in this process: the worker's batch code, no broker."""
    from asifdb.services import ingestion, licences

    with platform.sessions.begin() as session:
        licences.create(session, name=licence, actor=actor)
        job = ingestion.start_job(
            session,
            source=str(source),
            roots=TEST_ROOTS,
            license_name=licence,
            actor=actor,
            **options,
        )
    process_job(platform, job.id)


def process_job(platform: "Platform", job_id: int) -> None:
    """What a worker does with the job's pending batches, here in this process."""
    from asifdb.services import ingestion

    with platform.sessions() as session:
        batches = ingestion.BATCHES.pending(session, job_id)
    for batch in batches:
        ingestion.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders=platform.encoders,
            batch_id=batch,
        )


def tiny_shard(shared_data: Path, folder: Path, n: int) -> Path:
    """`folder` holding one webdataset shard of the first `n` real anchor pairs."""
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, n)
    return folder


def ingest_cifar_folders(platform: "Platform", source: Path, licence: str) -> None:
    """Class folders of CIFAR-10 images, captioned "a photo of a {class}.", as the seeds do."""
    ingest_now(
        platform,
        source,
        licence,
        actor="seed",
        collection="cifar10-train",
        template="a photo of a {}.",
    )


def cli_env(database_url: str, data_dir: Path | None = None) -> dict[str, str]:
    """This process's environment pointed at that database (and data folder), offline."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HF_HUB_OFFLINE": "1",
        "SOURCE_ROOTS": json.dumps([str(root) for root in TEST_ROOTS]),
    }
    if data_dir is not None:
        env["DATA_DIR"] = str(data_dir)
    return env


def asifdb_cli(
    *args: str, env: dict[str, str], timeout: float = 300, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`asifdb ARGS...` in a child process from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "asifdb.cli", *args],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        check=False,
    )


@contextmanager
def solo_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker (solo pool) with that environment, its output in `log`; stopped
    (and waited for) on exit."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "solo"]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def open_test_source(path: Path | str, **options: object) -> "Source":
    """`open_source` under the suite's roots."""
    from asifdb.ingest import open_source

    return open_source(path, roots=TEST_ROOTS, **options)  # type: ignore[arg-type]
