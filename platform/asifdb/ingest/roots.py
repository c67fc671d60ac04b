"""Server folders a command may name: only under the operator's configured roots (SOURCE_ROOTS).

`locate` is the one check every server path goes through (an ingest source, an eval or pair-value
folder, a class-names file); symlinks are resolved first, so a link cannot lead out of a root,
and a refusal never names the path it refused or anything outside the roots. Reports show paths
relative to the root that holds them (`Located.relative`).
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asifdb.errors import Forbidden


@dataclass(frozen=True)
class Located:
    """A path allowed by the roots: the real path of its root and its own (links resolved)."""

    root: Path
    path: Path

    @property
    def relative(self) -> str:
        """The path as reports show it: relative to its root ("." for the root itself)."""
        return relative(self.path, self.root)


def locate(path: str | Path, *, roots: Sequence[Path | str], what: str) -> Located:
    """`path` resolved (symlinks followed, `..` taken physically) if it lies under one of
    `roots` (relative roots are taken from the working folder); else Forbidden.

    The innermost root that holds it is its root. The path need not exist: whether a path
    outside the roots exists is never told (callers say "not found" for paths inside).
    """
    if not roots:
        raise Forbidden(
            f"{what}: server folders are off (SOURCE_ROOTS is empty); an operator can allow "
            "folders under chosen roots with SOURCE_ROOTS"
        )
    target = real(path)
    if target is not None:
        holders = [base for base in map(real, roots) if base and target.is_relative_to(base)]
        if holders:
            return Located(max(holders, key=lambda base: len(base.parts)), target)
    raise Forbidden(
        f"{what}: not a path under the configured source roots (SOURCE_ROOTS: "
        f"{', '.join(str(root) for root in roots)})"
    )


def inside(root: Path, path: Path | str) -> Path | None:
    """The real path of `path` if it lies under `root` (a real path), else None: what readers
    check before they open or list anything of a source."""
    target = real(path)
    return target if target is not None and target.is_relative_to(root) else None


def real(path: Path | str) -> Path | None:
    """`path` with `~` expanded and every symlink resolved, or None if it cannot be (a NUL
    byte, an unknown user, a loop)."""
    try:
        return Path(os.path.realpath(Path(path).expanduser(), strict=False))
    except (OSError, RuntimeError, ValueError):
        return None


def relative(path: Path, root: Path) -> str:
    """`path` (under `root`) relative to it, with / separators; "." for the root itself."""
    return path.relative_to(root).as_posix()
