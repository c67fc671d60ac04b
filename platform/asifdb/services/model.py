"""The live model's identity: its version, its encoders, and which pairs were usable when.

Every change of the usable set calls `bump` in the same transaction (ARCHITECTURE invariant 3).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from asifdb.encoders import Encoder, ImageInput
from asifdb.errors import ConfigError, Conflict


@dataclass(frozen=True)
class Encoders:
    """The model's two frozen encoders: images take raw bytes, texts take captions."""

    image: Encoder[ImageInput]
    text: Encoder[str]


EncodersFor = Callable[[str, str], Encoders]
"""Builds (or reuses) the encoders called (image name, text name); the worker supplies it."""


def ensure_state(session: Session, *, image_encoder: str, text_encoder: str) -> int:
    """Adopt the encoders on first use; refuse encoders other than the ones in the database."""
    row = _adopted(session, image_encoder=image_encoder, text_encoder=text_encoder)
    if mismatch := _mismatch(row, image_encoder=image_encoder, text_encoder=text_encoder):
        raise ConfigError(mismatch)
    return row.version


def adopt(session: Session, *, configured: Encoders, encoders_for: EncodersFor | None) -> Encoders:
    """The encoders that embed what joins the default model, as this transaction sees it: the
    configured ones on first use (adopted) or where they are the model's; else the ones the
    database names, loaded by `encoders_for` (a worker follows `asifdb models default` with
    no restart). Without `encoders_for`, encoders other than the configured are refused."""
    row = _adopted(session, image_encoder=configured.image.name, text_encoder=configured.text.name)
    mismatch = _mismatch(
        row, image_encoder=configured.image.name, text_encoder=configured.text.name
    )
    if mismatch is None:
        return configured
    if encoders_for is None:
        raise ConfigError(mismatch)
    return encoders_for(row.image_encoder, row.text_encoder)


def still_current(session: Session, encoders: Encoders) -> bool:
    """Whether `encoders` are the default model's now (the caller holds the model row's lock,
    so the answer holds until it commits)."""
    row = _state(session)
    return (row.image_encoder, row.text_encoder) == (encoders.image.name, encoders.text.name)


def _adopted(session: Session, *, image_encoder: str, text_encoder: str) -> Row:
    session.execute(
        text(
            "UPDATE model_state SET image_encoder = :i, text_encoder = :t "
            "WHERE id = 1 AND image_encoder IS NULL AND text_encoder IS NULL"
        ),
        {"i": image_encoder, "t": text_encoder},
    )
    return _state(session)


def require_encoders(session: Session, encoders: Encoders) -> None:
    """Refuse (Conflict) a query embedded by encoders other than the model's.

    Call it in the query's transaction, before comparing the query with the anchors (embedded
    by the model's encoders). A model without encoders yet (no pair ever) is no mismatch.
    """
    row = _state(session)
    if mismatch := _mismatch(
        row, image_encoder=encoders.image.name, text_encoder=encoders.text.name
    ):
        raise Conflict(mismatch)


def _state(session: Session) -> Row:
    return session.execute(
        text("SELECT version, image_encoder, text_encoder FROM model_state WHERE id = 1")
    ).one()


def _mismatch(model: Row, *, image_encoder: str, text_encoder: str) -> str | None:
    """Why encoders other than the model's cannot serve it (None when they are its own)."""
    if model.image_encoder is None and model.text_encoder is None:
        return None
    if (model.image_encoder, model.text_encoder) == (image_encoder, text_encoder):
        return None
    return (
        f"the model's pairs are embedded by {model.image_encoder} + {model.text_encoder}, "
        f"but the configured encoders are {image_encoder} + {text_encoder}: set "
        "IMAGE_ENCODER and TEXT_ENCODER to the model's encoders and restart, or switch "
        "explicitly with `asifdb reencode` (a re-encode of every pair)"
    )


def current_version(session: Session) -> int:
    return session.execute(text("SELECT version FROM model_state WHERE id = 1")).scalar_one()


def change_usable(
    session: Session,
    *,
    change: str,
    leaving: Iterable[int] = (),
    returning: Iterable[int] = (),
    always: bool = False,
) -> int | None:
    """The one way the usable set and the model version change, in the caller's transaction:
    a new version (the model row locked until commit) recording `change`, the `leaving` pairs'
    usability closed and the `returning` (or added) pairs' opened at it. Returns the version;
    None, and nothing changes, when no pair leaves or returns unless `always` (a revocation of
    a licence with no usable pair, a re-encode's switch, an erasure are versions too). Call it
    after the rows' own change (status, licence), so the version's count of usable pairs is
    the new one."""
    leaving, returning = list(leaving), list(returning)
    if not (leaving or returning or always):
        return None
    version = _bump(session, change=change)
    _close_usability(session, pair_ids=leaving, version=version)
    _open_usability(session, pair_ids=returning, version=version)
    return version


def _bump(session: Session, *, change: str) -> int:
    """Advance the model version (locks the model row until commit) and record the change."""
    version = session.execute(
        text(
            "UPDATE model_state SET version = version + 1, updated_at = now() "
            "WHERE id = 1 RETURNING version"
        )
    ).scalar_one()
    session.execute(
        text(
            "INSERT INTO model_versions (version, change, usable_pairs) "
            "VALUES (:v, :c, (SELECT count(*) FROM usable_pairs))"
        ),
        {"v": version, "c": change},
    )
    return version


def _open_usability(session: Session, *, pair_ids: Iterable[int], version: int) -> None:
    """Pairs that became usable at `version` (added, or their licence restored)."""
    ids = list(pair_ids)
    if ids:
        session.execute(
            text(
                "INSERT INTO pair_usability (pair_id, from_version) "
                "SELECT unnest(CAST(:ids AS bigint[])), :v"
            ),
            {"ids": ids, "v": version},
        )


def _close_usability(session: Session, *, pair_ids: Iterable[int], version: int) -> None:
    """Pairs that stopped being usable at `version` (revoked, deleted, rejected)."""
    ids = list(pair_ids)
    if ids:
        session.execute(
            text(
                "UPDATE pair_usability SET to_version = :v "
                "WHERE to_version IS NULL AND pair_id = ANY(CAST(:ids AS bigint[]))"
            ),
            {"ids": ids, "v": version},
        )
