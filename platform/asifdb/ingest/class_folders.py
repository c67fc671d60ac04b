"""Reader for a folder of class folders (`root/<class>/<image>`): each image's caption is a
template filled with its class name. sources.py lists one Part per class folder."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from asifdb.ingest.items import RejectReason, SourceItem, read_image_file


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
    """One class: every visible file in it is an item keyed `class/file`, sorted by file name.

    Non-images are items too, so they show up as rejects rather than vanish."""

    path: Path
    caption: str
    class_name: str

    @property
    def name(self) -> str:
        return self.path.name

    def declared_count(self) -> int:
        return len(self._files())

    def read(self, skip: int, max_image_bytes: int) -> Iterator[SourceItem]:
        for file in self._files()[skip:]:
            data = read_image_file(file, max_image_bytes)
            yield SourceItem(
                key=f"{self.name}/{file.name}",
                image_bytes=data if isinstance(data, bytes) else None,
                caption=self.caption,
                source_uri=str(file),
                metadata={"class_folder": self.name, "class_name": self.class_name},
                reject_reason=data if isinstance(data, RejectReason) else None,
            )

    def _files(self) -> list[Path]:
        return sorted(
            entry
            for entry in self.path.iterdir()
            if not entry.name.startswith(".") and entry.is_file()
        )


def list_classes(root: Path, template: str, classnames: Mapping[str, str]) -> list[ClassFolder]:
    """The visible sub-folders of `root`, by name, each with its caption filled in."""
    classes = []
    for entry in sorted(root.iterdir()):
        if not entry.name.startswith(".") and entry.is_dir():
            name = class_name(entry.name, classnames)
            classes.append(ClassFolder(entry, template.format(name), name))
    return classes
