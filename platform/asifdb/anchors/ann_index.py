"""The image HNSW index, built on demand: `asifdb ann build | drop | status`.

The exact scan serves collections up to `services.classify.AUTO_ANN_ABOVE` pairs faster and at
full agreement (docs/benchmarks-ann.md), while every ingested pair paid about 2.4 ms to keep an
HNSW index current (docs/benchmarks-ingest.md). So the index is not part of the schema: an
operator builds it for a collection large enough to need it (or to compare the paths), with
`CREATE INDEX CONCURRENTLY`, which lets ingestion and queries go on meanwhile. Once built,
PostgreSQL maintains it on every insert; `method="ann"` needs it, `auto` uses it when present
and the collection is past the threshold.

It indexes the embeddings by the model's image encoder only (a partial index over
`pair_embeddings`, cast to that encoder's width); after a switch of encoders it is "stale"
until dropped and built again.
"""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from asifdb.errors import ConfigError, Conflict, InvalidInput

INDEX_NAME = "ix_pair_embeddings_image_hnsw"
# pgvector's bounds for the build parameters.
M_RANGE = (2, 100)
EF_CONSTRUCTION_RANGE = (4, 1000)

State = Literal["absent", "building", "invalid", "stale", "ready"]

_STATE = text(
    """
    SELECT i.indisvalid, i.indisready, pg_relation_size(c.oid) AS bytes,
           pg_get_indexdef(c.oid) AS definition, c.reloptions,
           obj_description(c.oid, 'pg_class') AS encoder,
           (SELECT image_encoder FROM model_state WHERE id = 1) AS model_encoder
    FROM pg_class AS c JOIN pg_index AS i ON i.indexrelid = c.oid
    WHERE c.relname = :name AND c.relkind = 'i'
    """
)
_PROGRESS = text(
    """
    SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total
    FROM pg_stat_progress_create_index
    WHERE relid = 'pair_embeddings'::regclass AND datname = current_database()
    """
)
# The model's image encoder and the width of its embeddings (no row before the first pair).
_MODEL_IMAGE_ENCODER = text(
    "SELECT m.image_encoder, e.dim FROM model_state m JOIN encoders e ON e.name = m.image_encoder "
    "WHERE m.id = 1"
)


@dataclass(frozen=True)
class BuildParams:
    """HNSW build parameters (pgvector's defaults), the memory and workers the build may use."""

    m: int = 16
    ef_construction: int = 64
    memory: str = "1GB"
    workers: int = max(0, min(7, (os.cpu_count() or 1) - 1))

    def check(self) -> None:
        if not M_RANGE[0] <= self.m <= M_RANGE[1]:
            raise InvalidInput(f"m = {self.m}: use {M_RANGE[0]} to {M_RANGE[1]}")
        low, high = EF_CONSTRUCTION_RANGE
        if not low <= self.ef_construction <= high:
            raise InvalidInput(f"ef_construction = {self.ef_construction}: use {low} to {high}")
        if self.ef_construction < 2 * self.m:
            raise InvalidInput(
                f"ef_construction = {self.ef_construction} must be at least 2 * m = {2 * self.m}"
            )
        if not 0 <= self.workers <= 64:
            raise InvalidInput(f"workers = {self.workers}: use 0 to 64")


@dataclass(frozen=True)
class IndexStatus:
    """What the database holds: no index, one being built, a failed build, one of an image
    encoder the model no longer uses, or a usable one."""

    state: State
    encoder: str | None = None
    m: int | None = None
    ef_construction: int | None = None
    bytes: int | None = None
    definition: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """One reading of pg_stat_progress_create_index during a build."""

    phase: str
    tuples_done: int
    tuples_total: int
    seconds: float


def status(conn: Connection | Session) -> IndexStatus:
    """The index's state as the catalogue says it now."""
    row = conn.execute(_STATE, {"name": INDEX_NAME}).first()
    if row is None:
        return IndexStatus("absent")
    options = dict(o.split("=", 1) for o in (row.reloptions or []))
    state: State = "ready" if row.indisvalid and row.indisready else "invalid"
    if state == "invalid" and _building(conn):
        state = "building"
    if state == "ready" and row.encoder != row.model_encoder:
        state = "stale"
    return IndexStatus(
        state,
        encoder=row.encoder,
        m=int(options.get("m", 16)),
        ef_construction=int(options.get("ef_construction", 64)),
        bytes=int(row.bytes),
        definition=row.definition,
    )


def is_ready(session: Session | Connection) -> bool:
    return status(session).state == "ready"


def require_ready(session: Session | Connection) -> None:
    """The ANN path's precondition: a clear 409 naming the command that fixes it."""
    found = status(session)
    if found.state != "ready":
        fix = "drop it and build it again" if found.state == "stale" else "build it"
        raise Conflict(
            f"the approximate (HNSW) path needs the image index, which is {found.state}: "
            f"{fix} with `asifdb ann build` (or use method 'exact' or 'auto')"
        )


def build(
    engine: Engine,
    params: BuildParams = BuildParams(),
    *,
    on_progress: Callable[[Progress], None] | None = None,
    poll_seconds: float = 1.0,
) -> IndexStatus:
    """Build the index without blocking writes; a no-op if an equal one is ready.

    A ready index with other parameters is a Conflict (drop it first). A failed earlier build
    leaves an invalid index behind, which is dropped and built again. `on_progress` is called
    about every `poll_seconds` with PostgreSQL's own progress report of the build.
    """
    params.check()
    with engine.connect() as conn:
        _require_owner(conn)
        found = status(conn)
    if found.state == "ready":
        if (found.m, found.ef_construction) == (params.m, params.ef_construction):
            return found
        raise Conflict(
            f"the image index exists with m = {found.m}, ef_construction = "
            f"{found.ef_construction}: drop it first (`asifdb ann drop`)"
        )
    if found.state == "building":
        raise Conflict("the image index is being built by another session: wait for it")
    if found.state in ("invalid", "stale"):
        drop(engine)
    with engine.connect() as conn:
        model = conn.execute(_MODEL_IMAGE_ENCODER).first()
    if model is None:
        raise Conflict("the model has no pairs yet: there is nothing to index")
    encoder = literal(model.image_encoder)
    statement = text(
        f"CREATE INDEX CONCURRENTLY {INDEX_NAME} ON pair_embeddings "
        f"USING hnsw ((CAST(embedding AS halfvec({int(model.dim)}))) halfvec_cosine_ops) "
        f"WITH (m = {int(params.m)}, ef_construction = {int(params.ef_construction)}) "
        f"WHERE encoder = {encoder}"
    )
    # Which encoder it indexes, where `status` reads it (the catalogue keeps it with the index).
    label = text(f"COMMENT ON INDEX {INDEX_NAME} IS {encoder}")
    started = time.monotonic()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(
                    text(
                        "SELECT set_config('maintenance_work_mem', :memory, false), "
                        "set_config('max_parallel_maintenance_workers', :workers, false)"
                    ),
                    {"memory": params.memory, "workers": str(params.workers)},
                )
                conn.execute(statement)
                conn.execute(label)
        except BaseException as error:  # re-raised in the caller's thread below
            failure.append(error)

    builder = threading.Thread(target=run, name="ann-index-build", daemon=True)
    builder.start()
    while builder.is_alive():
        builder.join(poll_seconds)
        if on_progress is not None and builder.is_alive():
            reading = _progress(engine, started)
            if reading is not None:
                on_progress(reading)
    if failure:
        raise failure[0]
    with engine.connect() as conn:
        return status(conn)


def drop(engine: Engine) -> bool:
    """Drop the index (concurrently: queries and ingestion go on); False if there was none."""
    with engine.connect() as conn:
        _require_owner(conn)
        existed = status(conn).state != "absent"
        conn.rollback()
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX_NAME}"))
    return existed


def _require_owner(conn: Connection) -> None:
    """An index is schema: only the set-up role (the tables' owner or a superuser) changes it."""
    owns = conn.execute(
        text(
            "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
            "WHERE oid = 'pair_embeddings'::regclass"
        )
    ).scalar_one()
    if not owns:
        raise ConfigError(
            "building or dropping the image index changes the schema, which the application "
            "role may not: run it with ADMIN_DATABASE_URL set to the set-up role's URL (the "
            "embedded server needs nothing)"
        )


def _progress(engine: Engine, started: float) -> Progress | None:
    with engine.connect() as conn:
        row = conn.execute(_PROGRESS).first()
    if row is None:
        return None
    return Progress(
        phase=row.phase,
        tuples_done=int(row.tuples_done or 0),
        tuples_total=int(row.tuples_total or 0),
        seconds=time.monotonic() - started,
    )


def _building(conn: Connection | Session) -> bool:
    return conn.execute(_PROGRESS).first() is not None


def literal(value: str) -> str:
    """`value` as an SQL string literal (standard-conforming strings, PostgreSQL's default): the
    index's predicate and the query that must match it name the encoder as a constant."""
    return "'" + value.replace("'", "''") + "'"
