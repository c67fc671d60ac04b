"""BlobStore: content-addressed round trip, idempotent and atomic puts, hash checks."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from asifdb.blobs import (
    BlobIntegrityError,
    BlobNotFound,
    BlobStore,
    blob_uri,
    sha256_of_uri,
)
from asifdb.errors import InvalidInput

DATA = b"\xff\xd8\xff\xe0 not really a jpeg, but bytes are bytes" * 100
SHA = hashlib.sha256(DATA).hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_round_trip(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")

    assert not store.exists(SHA)
    assert store.put(DATA) == SHA

    assert store.path(SHA) == tmp_path / "blobs" / SHA[:2] / SHA[2:4] / SHA
    assert store.exists(SHA)
    assert store.get(SHA) == DATA
    assert _files(tmp_path) == [store.path(SHA)]
    assert sha256_of_uri(blob_uri(SHA)) == SHA
    assert blob_uri(SHA) == f"blob:sha256:{SHA}"


def test_put_is_idempotent(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    store.put(DATA)
    first = store.path(SHA).stat()

    assert store.put(DATA, sha256=SHA) == SHA

    again = store.path(SHA).stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert _files(tmp_path) == [store.path(SHA)]


def test_put_checks_the_given_hash(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(BlobIntegrityError, match=SHA):
        store.put(DATA, sha256="0" * 64)
    assert _files(tmp_path) == []


def test_get_detects_a_changed_file_and_put_repairs_it(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    store.put(DATA)
    store.path(SHA).write_bytes(DATA[:-1])

    with pytest.raises(BlobIntegrityError, match="no longer matches"):
        store.get(SHA)
    store.put(DATA)
    assert store.get(SHA) == DATA


def test_delete_and_missing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    store.put(DATA)

    assert store.delete(SHA) is True
    assert store.delete(SHA) is False
    assert not store.exists(SHA)
    with pytest.raises(BlobNotFound):
        store.get(SHA)


@pytest.mark.parametrize("bad", ["ABC", "g" * 64, SHA.upper(), f"../{SHA[3:]}"])
def test_rejects_what_is_not_a_sha256(bad: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        BlobStore(tmp_path).path(bad)
    with pytest.raises(InvalidInput):
        sha256_of_uri(f"file:///{bad}")


_PUT_IN_A_SMALL_FILE_LIMIT = """
import resource, signal, sys
from asifdb.blobs import BlobStore
# Python ignores SIGXFSZ (the write then fails with EFBIG); the default action kills.
if sys.argv[2] == "killed":
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    BlobStore(sys.argv[1]).put(bytes(range(256)) * 1024)
except OSError as error:
    print("failed:", error.strerror)
"""


@pytest.mark.parametrize("fate", ["survive", "killed"])
def test_a_failed_write_leaves_no_blob(fate: str, tmp_path: Path) -> None:
    """The OS stops the write after 4 KiB of 256 KiB: the writer either gets an error (and cleans
    up) or is killed mid-write (and cannot). Either way no blob appears."""
    data = bytes(range(256)) * 1024
    run = subprocess.run(
        [sys.executable, "-c", _PUT_IN_A_SMALL_FILE_LIMIT, str(tmp_path), fate],
        capture_output=True,
        text=True,
        timeout=60,
    )
    store = BlobStore(tmp_path)
    sha = hashlib.sha256(data).hexdigest()

    assert not store.exists(sha)
    if fate == "survive":
        assert run.returncode == 0 and "failed: File too large" in run.stdout
        assert _files(tmp_path) == []
    else:
        assert run.returncode < 0
        assert [path.name.startswith(".tmp-") for path in _files(tmp_path)] == [True]
    assert store.put(data) == sha
    assert store.get(sha) == data


def test_blobs_at_rest_are_the_platform_users_alone(tmp_path: Path) -> None:
    # Another OS user on the machine must not read licensed images, whatever the umask.
    import os

    from asifdb.context import Platform
    from asifdb.settings import Settings

    previous = os.umask(0o022)
    try:
        data_dir = tmp_path / "data"
        platform = Platform(Settings(data_dir=data_dir, database_url="postgresql://x@/y"))
        digest = platform.blobs.put(b"licensed bytes")
        upload = data_dir / "uploads" / "one"
        upload.mkdir(parents=True)  # what any other writer of the process creates
        (upload / "image.png").write_bytes(b"x")
    finally:
        os.umask(previous)
    blob = platform.blobs.path(digest)
    assert blob.stat().st_mode & 0o777 == 0o600
    folder = blob.parent
    while folder != tmp_path:
        assert folder.stat().st_mode & 0o077 == 0, folder
        folder = folder.parent
    assert (upload / "image.png").stat().st_mode & 0o077 == 0
    assert upload.stat().st_mode & 0o077 == 0
