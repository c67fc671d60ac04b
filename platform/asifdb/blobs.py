"""Content-addressed store for original image bytes in a local folder (`DATA_DIR/blobs`).
Ingestion puts; services get. The database stores `blob:sha256:<hex>`, never a file path.
Files and folders are the platform's OS user's alone (0600 / 0700): licensed images at rest."""

import hashlib
import os
import re
import tempfile
from pathlib import Path

from asifdb.errors import AsifdbError, InvalidInput, NotFound

_HEX = re.compile(r"[0-9a-f]{64}")
_URI_PREFIX = "blob:sha256:"


class BlobNotFound(NotFound):
    """No blob with that hash in the store."""


class BlobIntegrityError(AsifdbError):
    """Bytes do not match their hash: a caller passed the wrong hash, or a stored file changed."""

    http_status = 500


def blob_uri(sha256: str) -> str:
    """The URI the database stores for a blob. It names the content, not a place, so the store
    can move (another DATA_DIR, another machine) without rewriting rows."""
    return _URI_PREFIX + _checked(sha256)


def sha256_of_uri(uri: str) -> str:
    """The hash a `blob:sha256:<hex>` URI names."""
    if not uri.startswith(_URI_PREFIX):
        raise InvalidInput(f"{uri!r} is not a blob URI: expected {_URI_PREFIX}<64 hex digits>")
    return _checked(uri.removeprefix(_URI_PREFIX))


class BlobStore:
    """Blobs under `root/ab/cd/abcd…` (the full hex as the name), written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the blob lives (or would live)."""
        sha256 = _checked(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes, *, sha256: str | None = None) -> str:
        """Store `data` and return its SHA-256 hex. Idempotent; a stored copy that no longer
        matches its hash is rewritten. `sha256`, if given, must be the hash of `data`."""
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and _checked(sha256) != digest:
            raise BlobIntegrityError(
                f"the bytes hash to {digest}, not to the given {sha256}: pass the bytes that "
                "were validated"
            )
        target = self.path(digest)
        if target.is_file() and _file_sha256(target) == digest:
            return digest
        private_folder(target.parent)
        # mkstemp makes the file 0600: the API, UI and workers run as the same OS user.
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
                os.fchmod(file.fileno(), FILE_MODE)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_folder(target.parent)
        return digest

    def get(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its hash."""
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {sha256} in the store: was it ingested here?") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobIntegrityError(
                f"blob {sha256} no longer matches its hash: restore it from a backup or re-ingest"
            )
        return data

    def delete(self, sha256: str) -> bool:
        """Remove the blob; False if it was not there."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True


FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(folder: Path) -> None:
    """Create `folder` (and missing parents) readable by this OS user only; tighten it if it
    exists with wider permissions (a data folder from an older version)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for part in reversed(missing):
        part.mkdir(mode=FOLDER_MODE, exist_ok=True)
        os.chmod(part, FOLDER_MODE)  # mkdir's mode is filtered by the umask
    if folder.stat().st_mode & 0o077 and folder.stat().st_uid == os.geteuid():
        os.chmod(folder, FOLDER_MODE)


def _checked(sha256: str) -> str:
    if not _HEX.fullmatch(sha256):
        raise InvalidInput(f"{sha256!r} is not a SHA-256 hex digest (64 lower-case hex digits)")
    return sha256


def _file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable: it lives in the folder's entry table."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
