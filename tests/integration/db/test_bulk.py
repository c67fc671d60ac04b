"""Binary COPY of embeddings (`db.bulk`): the float16s stored are exactly those the plain
SQLAlchemy/pgvector path stores, and nothing outlives the transaction."""

import numpy as np
import pytest
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import Engine, bindparam, text
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from asifdb.db.bulk import STAGE, stage_embeddings


def _embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    # Values that round, subnormals in float16, signed zeros, the largest float16.
    rows[0, :6] = [1e-7, -3e-6, 0.0, -0.0, 65504.0, 0.33333334]
    return rows


def test_staged_values_equal_the_text_bound_ones(engine: Engine) -> None:
    image, texts = _embeddings(40, 1280, 1), _embeddings(40, 384, 2)
    with Session(engine) as session, session.begin():
        stage = stage_embeddings(session, image, texts)
        staged = session.execute(
            text(f"SELECT ord, image::text, text::text FROM {stage} ORDER BY ord")
        ).all()
        bound = text("SELECT CAST(:v AS halfvec)::text").bindparams(
            bindparam("v", type_=HALFVEC(1280))
        )
        bound_text = text("SELECT CAST(:v AS halfvec)::text").bindparams(
            bindparam("v", type_=HALFVEC(384))
        )
        for i, (ordinal, image_text, text_text) in enumerate(staged):
            assert ordinal == i
            assert image_text == session.execute(bound, {"v": image[i]}).scalar_one()
            assert text_text == session.execute(bound_text, {"v": texts[i]}).scalar_one()
    assert len(staged) == 40


def test_the_stage_empties_at_commit_and_at_rollback(engine: Engine) -> None:
    image, texts = _embeddings(5, 1280, 3), _embeddings(5, 384, 4)
    with engine.connect() as conn:
        session = Session(bind=conn)
        with session.begin():
            stage_embeddings(session, image, texts)
            assert session.execute(text(f"SELECT count(*) FROM {STAGE}")).scalar_one() == 5
        with session.begin():
            assert session.execute(text(f"SELECT count(*) FROM {STAGE}")).scalar_one() == 0
            stage_embeddings(session, image, texts)
            session.rollback()
        with session.begin():
            stage_embeddings(session, image[:2], texts[:2])
            assert session.execute(text(f"SELECT count(*) FROM {STAGE}")).scalar_one() == 2
            # A second stage in the same transaction replaces the first (no row of it left).
            stage_embeddings(session, image[:1] * 0.5, texts[:1])
            assert session.execute(text(f"SELECT count(*) FROM {STAGE}")).scalar_one() == 1


def test_any_width_stages_and_a_non_finite_value_fails_the_copy(engine: Engine) -> None:
    texts = _embeddings(2, 384, 5)
    with engine.connect() as conn:
        session = Session(bind=conn)
        # One connection (as a pool keeps it), batches of encoders of other widths in turn: the
        # stage has no fixed width; each encoder's width is kept by pair_embeddings' check.
        for width in (1280, 768, 1000):
            with session.begin():
                stage = stage_embeddings(session, _embeddings(2, width, 6), texts)
                dims = session.execute(
                    text(f"SELECT DISTINCT vector_dims(image) FROM {stage}")
                ).scalar_one()
                assert dims == width
    bad = _embeddings(2, 1280, 7)
    bad[1, 3] = np.inf
    with pytest.raises(DataError), Session(engine) as session, session.begin():
        stage_embeddings(session, bad, texts)
