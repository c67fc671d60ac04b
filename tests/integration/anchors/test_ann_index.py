"""The image HNSW index on demand: built concurrently, ignored by the schema check, required by
the approximate path, dropped again; and the `asifdb ann` commands around it."""

import json
import subprocess
from collections.abc import Iterator

import numpy as np
import pytest
from alembic import command
from sqlalchemy import Engine, insert, text

from asifdb.anchors import ann_index
from asifdb.anchors.ann import HnswTopK
from asifdb.db import schema
from asifdb.db.models import License
from asifdb.db.session import make_engine
from asifdb.errors import ConfigError, Conflict, InvalidInput
from tests.conftest import setup_url
from tests.pair_rows import insert_pairs
from tests.samples import asifdb_cli, cli_env

N_PAIRS = 400
IMAGE_DIM, TEXT_DIM = 1280, 384  # the default encoders' widths


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The set-up role's engine: an index is schema work (`asifdb ann build` uses it too)."""
    setup = make_engine(setup_url(db_url))
    yield setup
    setup.dispose()


def test_the_application_role_may_not_build_or_drop_it(db_url: str) -> None:
    app = make_engine(db_url)
    for change in (ann_index.build, ann_index.drop):
        with pytest.raises(ConfigError, match="ADMIN_DATABASE_URL"):
            change(app)
    app.dispose()


def _fill(engine: Engine) -> np.ndarray:
    rng = np.random.default_rng(3)
    images = rng.standard_normal((N_PAIRS, IMAGE_DIM)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    texts = rng.standard_normal((N_PAIRS, TEXT_DIM)).astype(np.float32)
    with engine.begin() as conn:
        licence = conn.execute(insert(License).values(name="l").returning(License.id)).scalar()
        insert_pairs(
            conn,
            [
                {
                    "collection": "c",
                    "image_sha256": f"{i:064x}",
                    "caption": f"pair {i}",
                    "license_id": licence,
                    "status": "ready",
                }
                for i in range(N_PAIRS)
            ],
            image=images,
            text_=texts,
        )
    return images


def _uses_index(engine: Engine) -> bool:
    plan = text(
        "EXPLAIN SELECT pair_id FROM pair_embeddings WHERE encoder = 'i' "
        f"ORDER BY CAST(embedding AS halfvec({IMAGE_DIM})) <=> "
        f"(SELECT CAST(embedding AS halfvec({IMAGE_DIM})) FROM pair_embeddings "
        "WHERE encoder = 'i' LIMIT 1) LIMIT 5"
    )
    with engine.begin() as conn:
        # As the ANN path plans (asifdb.anchors.ann): no sort of every pair instead.
        conn.execute(text("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off"))
        return ann_index.INDEX_NAME in "\n".join(conn.execute(plan).scalars())


def test_built_on_demand_used_by_the_ann_path_and_dropped(engine: Engine, db_url: str) -> None:
    images = _fill(engine)
    with engine.connect() as conn:
        assert ann_index.status(conn).state == "absent"
        with pytest.raises(Conflict, match="asifdb ann build"):
            ann_index.require_ready(conn)

    readings: list[ann_index.Progress] = []
    built = ann_index.build(
        engine,
        ann_index.BuildParams(m=8, ef_construction=32, workers=0),
        on_progress=readings.append,
        poll_seconds=0.01,
    )

    assert (built.state, built.m, built.ef_construction) == ("ready", 8, 32)
    assert built.bytes and built.bytes > 0 and "halfvec_cosine_ops" in (built.definition or "")
    assert all(r.phase and r.seconds >= 0 for r in readings)
    assert _uses_index(engine)
    with engine.connect() as conn:
        ann_index.require_ready(conn)
        ids, _ = HnswTopK(conn, "image").search(images[:3], 1)
    assert ids[:, 0].tolist() == [1, 2, 3]  # each stored image is its own nearest neighbour
    # The schema check ignores the index: present or absent, it is not drift.
    command.check(schema.alembic_config(db_url))
    # Building again with the same parameters is a no-op; with others, a clear conflict.
    assert ann_index.build(engine, ann_index.BuildParams(m=8, ef_construction=32)) == built
    with pytest.raises(Conflict, match="asifdb ann drop"):
        ann_index.build(engine, ann_index.BuildParams(m=16))

    assert ann_index.drop(engine) is True
    assert ann_index.drop(engine) is False
    with engine.connect() as conn:
        assert ann_index.status(conn).state == "absent"
    assert not _uses_index(engine)
    command.check(schema.alembic_config(db_url))


def test_a_failed_build_leaves_an_invalid_index_that_the_next_build_replaces(
    engine: Engine,
) -> None:
    _fill(engine)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        # What an interrupted CREATE INDEX CONCURRENTLY leaves: an index marked invalid.
        conn.execute(
            text(
                f"CREATE INDEX {ann_index.INDEX_NAME} ON pair_embeddings USING hnsw "
                f"((CAST(embedding AS halfvec({IMAGE_DIM}))) halfvec_cosine_ops) "
                "WITH (m = 4, ef_construction = 8) WHERE encoder = 'i'"
            )
        )
        conn.execute(
            text(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
                f"'{ann_index.INDEX_NAME}'::regclass"
            )
        )
        assert ann_index.status(conn).state == "invalid"
        with pytest.raises(Conflict, match="invalid"):
            ann_index.require_ready(conn)

    rebuilt = ann_index.build(engine, ann_index.BuildParams(workers=0))

    assert (rebuilt.state, rebuilt.m, rebuilt.ef_construction) == ("ready", 16, 64)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (ann_index.BuildParams(m=1), "m = 1"),
        (ann_index.BuildParams(ef_construction=2000), "ef_construction = 2000"),
        (ann_index.BuildParams(m=40, ef_construction=64), "at least 2 \\* m"),
        (ann_index.BuildParams(workers=-1), "workers"),
    ],
)
def test_bad_build_parameters_are_refused_before_anything_runs(
    engine: Engine, params: ann_index.BuildParams, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        ann_index.build(engine, params)
    with engine.connect() as conn:
        assert ann_index.status(conn).state == "absent"


def _cli(db_url: str, *args: str, admin: bool = True) -> subprocess.CompletedProcess[str]:
    env = cli_env(db_url)
    if admin:
        env["ADMIN_DATABASE_URL"] = setup_url(db_url)
    return asifdb_cli("ann", *args, env=env, timeout=120)


def test_the_ann_commands(engine: Engine, db_url: str) -> None:
    _fill(engine)

    absent = _cli(db_url, "status", "--json")
    as_app = _cli(db_url, "build", admin=False)
    built = _cli(db_url, "build", "--m", "8", "--ef-construction", "32", "--json")
    refused = _cli(db_url, "build", "--m", "1")
    dropped = _cli(db_url, "drop")

    assert json.loads(absent.stdout)["state"] == "absent", absent.stderr
    assert as_app.returncode == 1 and "ADMIN_DATABASE_URL" in as_app.stderr
    assert "Traceback" not in as_app.stderr
    assert json.loads(built.stdout)["state"] == "ready", built.stderr
    assert json.loads(built.stdout)["m"] == 8
    assert refused.returncode == 1 and "m = 1: use 2 to 100" in refused.stderr
    assert dropped.returncode == 0 and "image index dropped" in dropped.stdout
    with engine.connect() as conn:
        assert ann_index.status(conn).state == "absent"
