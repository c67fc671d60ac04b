"""Readers for img2dataset output: `webdataset` tar shards and `files` folders of KEY.jpg, KEY.txt
and KEY.json. sources.py lists them as Parts; their declared sizes come from `NNNNN_stats.json`.
Shards, stats and sample files are opened through local_files; tar members are read bounded."""

import json
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asifdb.ingest.items import (
    RejectCode,
    RejectReason,
    SourceItem,
    decode_caption,
    image_too_large,
)
from asifdb.ingest.local_files import (
    CAPTION,
    METADATA,
    LocalFileError,
    open_file,
    read_file,
    read_item_file,
)
from asifdb.ingest.roots import inside, relative

if TYPE_CHECKING:
    from asifdb.ingest.validate import Limits

_IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"})
_SAMPLE_EXTENSIONS = _IMAGE_EXTENSIONS | {"txt", "json"}
_BLOCK = 512
_STATS_BYTES = 1 << 20  # an img2dataset stats file is a few kB

# What a member or file read gave: its bytes, a reason it could not be read, or None if absent.
_Read = bytes | RejectReason | None


@dataclass
class _Walked:
    """Where each sample of a shard starts (its first member's header offset) and its key, for
    the samples walked so far in this process, in order."""

    offsets: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    entries: int | None = None  # a whole walk's entries, once one was made (no stats file)


# A batch that starts mid-shard resumes at its first sample instead of walking the headers of
# every sample before it (img2dataset writes 10,000 samples a shard by default). Keyed by path,
# modification time and size: a changed shard is walked again.
_WALKED: OrderedDict[tuple[str, int, int], _Walked] = OrderedDict()
_WALKED_SHARDS = 32  # about 1 MB a 10,000-sample shard
_WALKED_LOCK = threading.Lock()


def _walked(path: Path) -> _Walked:
    try:
        stat = path.stat()
    except OSError:
        return _Walked()  # the open fails next, as a damaged-shard item
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _WALKED_LOCK:
        walked = _WALKED.setdefault(key, _Walked())
        _WALKED.move_to_end(key)
        while len(_WALKED) > _WALKED_SHARDS:
            _WALKED.popitem(last=False)
        return walked


def _split_name(name: str) -> tuple[str, str]:
    """`dir/000123.seg.png` -> (`dir/000123`, `seg.png`): webdataset's rule, the first dot."""
    head, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{head}/{stem}" if head else stem), extension.lower()


def _declared_count(stats: Path, root: Path, scan: Callable[[], int]) -> int:
    """`successes` from img2dataset's stats file, else (absent, damaged or zero) a scan."""
    try:
        successes = json.loads(read_file(stats, root=root, limit=_STATS_BYTES))["successes"]
    except (LocalFileError, ValueError, KeyError, TypeError):
        # A missing or damaged stats file only costs a scan of the part.
        return scan()
    if isinstance(successes, int) and not isinstance(successes, bool) and successes > 0:
        return successes
    return scan()


def _source_uri(metadata: dict[str, Any], fallback: str) -> str:
    """Where the image came from: img2dataset's `url`, else `source/original_name`, else where
    it lies in the source."""
    url = metadata.get("url")
    if isinstance(url, str) and url:
        return url
    name = metadata.get("original_name")
    if isinstance(name, str) and name:
        origin = metadata.get("source")
        return f"{origin}/{name}" if isinstance(origin, str) and origin else name
    return fallback


def _sample(key: str, image: _Read, caption: _Read, meta: _Read, location: str) -> SourceItem:
    """One sample from its three reads; the first problem, image first, is its reject reason."""
    metadata, meta_problem = _metadata(key, meta)
    text = decode_caption(caption) if isinstance(caption, bytes) else caption
    reason: RejectReason | None
    if image is None:
        reason = RejectReason(RejectCode.MISSING_IMAGE, f"sample {key} has no image file")
    elif isinstance(image, RejectReason):
        reason = image
    elif text is None:
        reason = RejectReason(RejectCode.MISSING_CAPTION, f"sample {key} has no .txt caption")
    elif isinstance(text, RejectReason):
        reason = text
    else:
        reason = meta_problem
    return SourceItem(
        key=key,
        image_bytes=image if isinstance(image, bytes) else None,
        caption=text if isinstance(text, str) else None,
        source_uri=_source_uri(metadata, location),
        metadata=metadata,
        reject_reason=reason,
    )


def _metadata(key: str, meta: _Read) -> tuple[dict[str, Any], RejectReason | None]:
    """The KEY.json object (optional), or why it is unusable: provenance must not be guessed."""
    if meta is None:
        return {}, None
    if isinstance(meta, RejectReason):
        return {}, meta
    try:
        parsed = json.loads(meta)
    except ValueError as error:
        return {}, RejectReason(RejectCode.BAD_RECORD, f"sample {key}: .json is not JSON ({error})")
    if not isinstance(parsed, dict):
        return {}, RejectReason(RejectCode.BAD_RECORD, f"sample {key}: .json is not an object")
    return parsed, None


def _image_extension(extensions: dict[str, Any]) -> str | None:
    return next((extension for extension in extensions if extension in _IMAGE_EXTENSIONS), None)


@dataclass(frozen=True)
class TarShard:
    """One webdataset shard. A damaged shard still gives the samples before the damage, then one
    `corrupt_shard` item keyed by the shard's name. `root` is the source's root."""

    path: Path
    root: Path

    @property
    def name(self) -> str:
        return self.path.name

    def declared_count(self) -> int:
        stats = self.path.with_name(f"{self.path.name.removesuffix('.tar')}_stats.json")
        return _declared_count(stats, self.root, self._scanned_count)

    def _scanned_count(self) -> int:
        """Entries of a walk of the whole shard, walked once a process (recording offsets)."""
        walked = _walked(self.path)
        if walked.entries is None:
            walked.entries = sum(1 for _ in self._entries(0, walked))
        return walked.entries

    def read(self, skip: int, limits: "Limits") -> Iterator[SourceItem]:
        walked = _walked(self.path)
        resume = min(skip, len(walked.offsets) - 1) if walked.offsets else 0
        # Keys before the resumed sample count too: a repeated key is refused wherever it is.
        seen: set[str] = set(walked.keys[:resume])
        for index, entry in enumerate(self._entries(resume, walked), start=resume):
            if isinstance(entry, str):
                if index >= skip:
                    yield self._damaged(entry)
                continue
            tar, members = entry
            key = _split_name(members[0].name)[0]
            repeated = key in seen
            seen.add(key)
            if index < skip:
                continue
            if repeated:
                # Keys must stay unique; webdataset itself would split such a sample in two.
                yield SourceItem(
                    key=f"{self.name}/{key}#{index}",
                    image_bytes=None,
                    caption=None,
                    source_uri=f"{self._where}/{members[0].name}",
                    reject_reason=RejectReason(
                        RejectCode.CORRUPT_SHARD,
                        f"files of sample {key} are not next to each other in shard {self.name}: "
                        "re-create the shard with each sample's files together",
                    ),
                )
            else:
                yield self._read_sample(tar, members, limits)

    @property
    def _where(self) -> str:
        return relative(self.path, self.root)

    def _damaged(self, problem: str) -> SourceItem:
        return SourceItem(
            key=self.name,
            image_bytes=None,
            caption=None,
            source_uri=self._where,
            metadata={"shard": self.name},
            reject_reason=RejectReason(
                RejectCode.CORRUPT_SHARD,
                f"shard {self.name} {problem}: samples past the damage are missing; "
                "re-create or re-download the shard",
            ),
        )

    def _entries(
        self, resume: int = 0, walked: _Walked | None = None
    ) -> Iterator[tuple[tarfile.TarFile, list[tarfile.TarInfo]] | str]:
        """Each sample as its members (headers only, data unread), then a message if the shard
        is damaged. Counting and reading both walk this, so they always agree.

        `resume` > 0 starts at that sample, at the offset `walked` recorded for it; samples
        walked past the end of `walked` are recorded there."""
        try:
            file = open_file(self.path, root=self.root)
        except LocalFileError as error:
            yield f"cannot be opened ({error})"
            return
        try:
            # Not a `with`: a shard that fails to open is an entry, not an exception.
            tar = tarfile.open(fileobj=file, mode="r:")  # noqa: SIM115
        except (tarfile.TarError, OSError) as error:
            file.close()
            yield f"cannot be opened as a tar archive ({error})"
            return
        with file, tar:
            group: list[tarfile.TarInfo] = []
            samples = resume
            problem: str | None = None
            if resume:
                assert walked is not None and tar.fileobj is not None
                tar.firstmember = None  # read on open, at offset 0
                tar.offset = walked.offsets[resume]
            try:
                for member in iter(tar.next, None):
                    if not member.isfile() or _split_name(member.name)[1] not in _SAMPLE_EXTENSIONS:
                        continue
                    if group and _split_name(member.name)[0] != _split_name(group[0].name)[0]:
                        _record(walked, samples, group[0])
                        samples += 1
                        yield tar, group
                        group = []
                    group.append(member)
            except (tarfile.TarError, OSError) as error:
                problem = f"is damaged after {samples} samples ({error})"
            if group:
                _record(walked, samples, group[0])
                samples += 1
                yield tar, group
            problem = problem or _missing_end(tar, samples)
            if problem:
                yield problem

    def _read_sample(
        self, tar: tarfile.TarFile, members: list[tarfile.TarInfo], limits: "Limits"
    ) -> SourceItem:
        key = _split_name(members[0].name)[0]
        by_extension: dict[str, tarfile.TarInfo] = {}
        for member in members:
            by_extension.setdefault(_split_name(member.name)[1], member)
        image_extension = _image_extension(by_extension)
        image: _Read = None
        if image_extension is not None:
            member = by_extension[image_extension]
            if member.size > limits.max_image_bytes:
                image = image_too_large(member.size, limits.max_image_bytes)
            else:
                image = self._member_bytes(tar, member)
        text = limits.max_text_bytes
        caption = meta = None
        if "txt" in by_extension:
            caption = self._member_bytes(tar, by_extension["txt"], text, CAPTION.too_large)
        if "json" in by_extension:
            meta = self._member_bytes(tar, by_extension["json"], text, METADATA.too_large)
        located = by_extension[image_extension] if image_extension else members[0]
        return _sample(f"{self.name}/{key}", image, caption, meta, f"{self._where}/{located.name}")

    def _member_bytes(
        self,
        tar: tarfile.TarFile,
        member: tarfile.TarInfo,
        limit: int | None = None,
        too_large: RejectCode = RejectCode.BAD_RECORD,
    ) -> bytes | RejectReason:
        if limit is not None and member.size > limit:
            return RejectReason(
                too_large,
                f"{member.name} in {self.name} is {member.size:,} bytes, over the limit of "
                f"{limit:,}",
            )
        try:
            reader = tar.extractfile(member)
            if reader is None:
                raise tarfile.ReadError("not a regular file")
            return reader.read()
        except (tarfile.TarError, OSError) as error:
            return RejectReason(
                RejectCode.CORRUPT_SHARD, f"{member.name} in {self.name} is cut short ({error})"
            )


def _record(walked: _Walked | None, index: int, first: tarfile.TarInfo) -> None:
    """Note where sample `index` starts, if it is the next one `walked` lacks."""
    if walked is None:
        return
    with _WALKED_LOCK:
        if index == len(walked.offsets):
            walked.offsets.append(first.offset)
            walked.keys.append(_split_name(first.name)[0])


def _missing_end(tar: tarfile.TarFile, samples: int) -> str | None:
    """Why the archive stopped before its end-of-archive block, or None if it has one.

    tarfile treats a cut or garbled header past the first as a clean end; only the block where
    it stopped tells the difference."""
    assert tar.fileobj is not None
    tar.fileobj.seek(tar.offset)
    block = tar.fileobj.read(_BLOCK)
    if block == bytes(_BLOCK):
        return None
    if len(block) < _BLOCK:
        return f"is cut short after {samples} samples (no end-of-archive block)"
    return f"has a damaged header at byte {tar.offset:,} after {samples} samples"


@dataclass(frozen=True)
class FilesFolder:
    """One folder of img2dataset's `files` layout (`00000/`), samples sorted by key. Entries
    that are not folders count (a FIFO named KEY.jpg is a sample, rejected); `root` is the
    source's root."""

    path: Path
    root: Path

    @property
    def name(self) -> str:
        return self.path.name

    def declared_count(self) -> int:
        stats = self.path.with_name(f"{self.path.name}_stats.json")
        return _declared_count(stats, self.root, lambda: len(self._samples()))

    def read(self, skip: int, limits: "Limits") -> Iterator[SourceItem]:
        text = limits.max_text_bytes
        for key, files in self._samples()[skip:]:
            image_extension = _image_extension(files)
            image: _Read = None
            if image_extension is not None:
                image = read_item_file(
                    files[image_extension], root=self.root, limit=limits.max_image_bytes
                )
            caption = meta = None
            if "txt" in files:
                caption = read_item_file(files["txt"], root=self.root, limit=text, role=CAPTION)
            if "json" in files:
                meta = read_item_file(files["json"], root=self.root, limit=text, role=METADATA)
            location = files[image_extension] if image_extension else files.get("txt", self.path)
            yield _sample(f"{self.name}/{key}", image, caption, meta, relative(location, self.root))

    def _samples(self) -> list[tuple[str, dict[str, Path]]]:
        groups: dict[str, dict[str, Path]] = {}
        for entry in self.path.iterdir():
            key, extension = _split_name(entry.name)
            if key and extension in _SAMPLE_EXTENSIONS and not entry.is_dir():
                groups.setdefault(key, {})[extension] = entry
        return sorted(groups.items())


def list_shards(path: Path, *, root: Path) -> list[TarShard]:
    """The shards of a webdataset source: the .tar itself, or a folder's .tar entries by name
    (any but folders: one that cannot be read is a `corrupt_shard` item)."""
    if not path.is_dir():
        return [TarShard(path, root)]
    return [TarShard(entry, root) for entry in sorted(path.glob("*.tar")) if not entry.is_dir()]


def list_folders(path: Path, *, root: Path) -> list[FilesFolder]:
    """The numbered shard folders (`00000/`, `00001/`, ...) of a `files` source, by name; a link
    to a folder outside `root` (the source's root) is never listed."""
    return [
        FilesFolder(entry, root)
        for entry in sorted(path.iterdir())
        if is_shard_folder(entry) and inside(root, entry)
    ]


def is_shard_folder(path: Path) -> bool:
    return path.name.isdigit() and path.is_dir()
