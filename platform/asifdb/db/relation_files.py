"""The files a table's bytes live in, and a search of them for given byte patterns.

Used by erasure to show that erased values are gone from the server's files, where this
process can read them (the embedded server's data folder): a table's heap, its TOAST table
and TOAST index, and every index of both. Only the main fork holds tuple data (the free-space
and visibility maps hold none). A tuple never spans a page, and a 1 GB segment holds whole
pages, so a pattern inside one stored value is found inside one segment file.
"""

import mmap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, text

_RELATIONS = text(
    """
    WITH t AS (SELECT c.oid, c.relname AS table_name, c.reltoastrelid
               FROM pg_class c WHERE c.oid = CAST(:table AS regclass)),
         rels AS (
           SELECT t.oid, t.table_name FROM t
           UNION ALL SELECT t.reltoastrelid, t.table_name FROM t WHERE t.reltoastrelid <> 0
           UNION ALL SELECT i.indexrelid, t.table_name FROM t JOIN pg_index i
                     ON i.indrelid IN (t.oid, t.reltoastrelid)
         )
    SELECT c.relname, rels.table_name, pg_relation_filepath(c.oid), c.relfilenode
    FROM rels JOIN pg_class c ON c.oid = rels.oid
    ORDER BY c.relname
    """
)


@dataclass(frozen=True)
class Relation:
    """One relation (heap, TOAST, or index) of a table, and its file (relative to PGDATA)."""

    name: str
    table: str
    path: str
    filenode: int


def relations(conn: Connection, tables: Iterable[str]) -> list[Relation]:
    """Every relation holding the tables' data: heap, TOAST table and index, indexes."""
    found: list[Relation] = []
    for table in tables:
        rows = conn.execute(_RELATIONS, {"table": table}).all()
        found += [Relation(name, tab, path, int(node)) for name, tab, path, node in rows]
    return found


def segments(pgdata: Path, relation: Relation) -> list[Path]:
    """The relation's main-fork segment files: `path`, `path.1`, `path.2`, ..."""
    first = pgdata / relation.path
    files = [first] if first.is_file() else []
    n = 1
    while (more := first.with_name(f"{first.name}.{n}")).is_file():
        files.append(more)
        n += 1
    return files


def search(
    pgdata: Path, found_in: Iterable[Relation], patterns: Mapping[str, bytes]
) -> dict[str, list[str]]:
    """For each relation, the keys of the patterns its files contain (memory-mapped reads)."""
    hits: dict[str, list[str]] = {}
    for relation in found_in:
        seen: set[str] = set()
        for segment in segments(pgdata, relation):
            if segment.stat().st_size == 0:
                continue
            with segment.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                for key, pattern in patterns.items():
                    if key not in seen and m.find(pattern) >= 0:
                        seen.add(key)
        hits[relation.name] = sorted(seen)
    return hits
