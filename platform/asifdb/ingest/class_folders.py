"""Reader for a folder of class folders (`root/<class>/<image>`): each image's caption is a
template filled with its class name. sources.py lists one Part per class folder; every file is
read through local_files (regular files under the source's root only)."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from asifdb.ingest.items import RejectReason, SourceItem
from asifdb.ingest.local_files import read_item_file
from asifdb.ingest.roots import inside, relative

if TYPE_CHECKING:
    from asifdb.ingest.validate import Limits


def class_name(folder: str, classnames: Mapping[str, str]) -> str:
    """The name a caption uses: the mapping's (e.g. wnid -> name), else the folder's with
    underscores as spaces."""
    return classnames.get(folder) or folder.replace("_", " ")


def parse_classnames(text: str) -> dict[str, str]:
    """A `classnames.txt`: `folder<TAB>name` lines; a line without a tab maps nothing."""
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        folder, tab, name = line.partition("\t")
        if tab and folder.strip() and name.strip():
            mapping[folder.strip()] = name.strip()
    return mapping


@dataclass(frozen=True)
class ClassFolder:
    """One class: every visible entry but a folder is an item keyed `class/file`, sorted by
    name. Non-images (a FIFO, a link out of the root) are items too, so they show up as rejects
    rather than vanish. `root` is the source's root (a real path)."""

    path: Path
    caption: str
    class_name: str
    root: Path

    @property
    def name(self) -> str:
        return self.path.name

    def declared_count(self) -> int:
        return len(self._files())

    def read(self, skip: int, limits: "Limits") -> Iterator[SourceItem]:
        for file in self._files()[skip:]:
            data = read_item_file(file, root=self.root, limit=limits.max_image_bytes)
            yield SourceItem(
                key=f"{self.name}/{file.name}",
                image_bytes=data if isinstance(data, bytes) else None,
                caption=self.caption,
                source_uri=relative(file, self.root),
                metadata={"class_folder": self.name, "class_name": self.class_name},
                reject_reason=data if isinstance(data, RejectReason) else None,
            )

    def _files(self) -> list[Path]:
        return sorted(
            entry
            for entry in self.path.iterdir()
            if not entry.name.startswith(".") and not entry.is_dir()
        )


def list_classes(
    folder: Path, template: str, classnames: Mapping[str, str], *, root: Path
) -> list[ClassFolder]:
    """The visible sub-folders of `folder`, by name, each with its caption filled in; a link
    to a folder outside `root` (the source's root) is not one: it is never listed."""
    classes = []
    for entry in sorted(folder.iterdir()):
        if not entry.name.startswith(".") and entry.is_dir() and inside(root, entry):
            name = class_name(entry.name, classnames)
            classes.append(ClassFolder(entry, template.format(name), name, root))
    return classes
