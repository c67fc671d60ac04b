"""Server-side folders a caller may name: only under the operator's configured roots.

The one check every path from a request goes through (today the pair-value route's folder and
class-names file); symlinks are resolved first, so a link cannot lead out of a root, and the
refusal never names the path it refused or what lies outside the roots.
"""

from collections.abc import Sequence
from pathlib import Path

from asifdb.errors import Forbidden


def under_roots(path: str | Path, *, roots: Sequence[Path], what: str) -> Path:
    """`path`, resolved (symlinks followed), if it lies under one of `roots`; else Forbidden."""
    if not roots:
        raise Forbidden(
            f"{what}: server-side folders are off (SOURCE_ROOTS is empty); an operator can "
            "allow folders under chosen roots with SOURCE_ROOTS"
        )
    try:
        resolved = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a loop, a NUL byte
        resolved = None
    if resolved is not None:
        for root in roots:
            base = Path(root).expanduser().resolve()
            if resolved == base or resolved.is_relative_to(base):
                return resolved
    raise Forbidden(
        f"{what}: not an existing path under the configured SOURCE_ROOTS "
        f"({', '.join(str(r) for r in roots)})"
    )
