"""What every curation list reads and checks: paging, the k / p check, the model view and the
exact index it scores with, the columns a listed pair shows."""

import numpy as np
from sqlalchemy.orm import Session

from asifdb import engine
from asifdb.anchors.live import LiveModel, View
from asifdb.db.session import snapshot
from asifdb.errors import Conflict, InvalidInput
from asifdb.services.classify import Options

MAX_PAGE = 500


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit = {limit}: use 1 to {MAX_PAGE}")
    if offset < 0:
        raise InvalidInput(f"offset = {offset}: use 0 or more")


def check_k_p(k: int, p: float) -> None:
    """ASIF's k and p within the bounds every request has (`services.classify.K_RANGE`, ...)."""
    Options(k=k, p=p).check()


def model_view(session: Session, live: LiveModel, *, least: int) -> View:
    snapshot(session)
    view = live.view(session)
    if view.rows.size < least:
        raise Conflict(
            f"the model has {view.rows.size} usable pairs: curation needs at least {least}"
        )
    return view


def exact_index(anchors: np.ndarray, live: LiveModel) -> engine.ExactTopK:
    """An exact index over the view's (unit, float32) rows as they are, not a normalised copy,
    scanned as the live model scans batches (EXACT_SCAN): the same results, less memory."""
    return engine.ExactTopK.of_unit_rows(
        anchors, ids=np.arange(len(anchors)), scan_dtype=live.batch_scan
    )


PAIR_COLUMNS = (
    "u.id AS pair_id, u.caption, u.collection, u.source_key, u.width, u.height, "
    "l.name AS license, (r.pair_id IS NOT NULL) AS marked"
)
