"""Safe reads of local files: the only way a reader (JSONL, class folders, img2dataset files and
tar shards, class-names files) or a labelled-folder service opens one.

Only regular files under the source's root: every symlink is resolved first and must stay in
the root; the path is then walked from the root one folder at a time with O_NOFOLLOW, so a link
swapped in meanwhile is refused rather than followed. The type is checked before the open and
again on the open descriptor (FIFOs, devices, sockets and folders are refused, and the open is
non-blocking, so nothing can hang it), and every read stops at its limit. A refusal names the
file relative to the root (nothing for a path outside it) and never says what the file holds.
"""

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from asifdb.ingest.items import RejectCode, RejectReason, image_too_large
from asifdb.ingest.roots import inside, relative

_FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


@dataclass(frozen=True)
class Role:
    """What a file is to its reader: the word for it and the codes of its refusals."""

    word: str
    missing: RejectCode
    too_large: RejectCode


IMAGE = Role("image", RejectCode.MISSING_IMAGE, RejectCode.IMAGE_TOO_LARGE)
CAPTION = Role("caption file", RejectCode.MISSING_CAPTION, RejectCode.CAPTION_TOO_LONG)
METADATA = Role("metadata file", RejectCode.BAD_RECORD, RejectCode.BAD_RECORD)
LISTING = Role("file", RejectCode.UNREADABLE_FILE, RejectCode.UNREADABLE_FILE)


class LocalFileError(Exception):
    """A local file refused or unreadable; `reason` is the item's reject reason."""

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(reason.message)
        self.reason = reason


def shown(path: Path | str, root: Path) -> str:
    """How a message names `path`: relative to `root` if it lies there, else not at all."""
    located = inside(root, path)
    return relative(located, root) if located else "(a path outside the source)"


def open_file(path: Path | str, *, root: Path, role: Role = LISTING) -> BinaryIO:
    """`path` opened for reading, if it is a regular file under `root` (a real path)."""
    located = inside(root, path)
    if located is None:
        raise _refused(
            RejectCode.OUTSIDE_SOURCE,
            f"the {role.word} is outside the source's folder (an absolute path, `..` or a "
            "symlink leading out of it): only files under the source's root are read",
        )
    name = relative(located, root)
    parts = located.relative_to(root).parts
    if not parts:
        raise _refused(RejectCode.NOT_A_FILE, f"the {role.word} {name} is a folder")
    try:
        folder = os.open(root, _DIR_FLAGS)
        try:
            for part in parts[:-1]:
                below = os.open(part, _DIR_FLAGS, dir_fd=folder)
                os.close(folder)
                folder = below
            _check_kind(os.stat(parts[-1], dir_fd=folder, follow_symlinks=False), role, name)
            descriptor = os.open(parts[-1], _FILE_FLAGS, dir_fd=folder)
        finally:
            os.close(folder)
    except FileNotFoundError:
        raise _refused(role.missing, f"{role.word} {name} not found") from None
    except OSError as error:
        raise _refused(
            RejectCode.UNREADABLE_FILE, f"cannot read {role.word} {name}: {error.strerror}"
        ) from None
    try:
        _check_kind(os.fstat(descriptor), role, name)
    except LocalFileError:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def read_file(path: Path | str, *, root: Path, limit: int, role: Role = LISTING) -> bytes:
    """A regular file's bytes, at most `limit` of them (LocalFileError past it, or if refused)."""
    with open_file(path, root=root, role=role) as file:
        size = os.fstat(file.fileno()).st_size
        data = b"" if size > limit else file.read(limit + 1)
    if size > limit or len(data) > limit:
        size = max(size, len(data))
        if role is IMAGE:
            raise LocalFileError(image_too_large(size, limit))
        raise _refused(
            role.too_large,
            f"{role.word} {shown(path, root)} is {size:,} bytes, over the limit of {limit:,}",
        )
    return data


def read_item_file(
    path: Path | str, *, root: Path, limit: int, role: Role = IMAGE
) -> bytes | RejectReason:
    """`read_file` for readers: the bytes, or the item's reject reason."""
    try:
        return read_file(path, root=root, limit=limit, role=role)
    except LocalFileError as error:
        return error.reason


def _check_kind(info: os.stat_result, role: Role, name: str) -> None:
    if stat.S_ISLNK(info.st_mode):
        # Only if the path changed since it was resolved: links are resolved before the walk.
        raise _refused(
            RejectCode.UNREADABLE_FILE, f"the {role.word} {name} changed into a link while read"
        )
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise _refused(
            RejectCode.NOT_A_FILE, f"the {role.word} {name} is {kind}: only regular files are read"
        )


def _refused(code: RejectCode, message: str) -> LocalFileError:
    return LocalFileError(RejectReason(code, message))
