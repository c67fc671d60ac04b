"""What several pages draw: image thumbnails from the blob store, a table of pairs with them
(for keys that may read pairs, as the API's), one pair with its provenance and licence, and the
choice of a ready model."""

import base64
import io
from collections.abc import Sequence
from typing import Any

import gate
import pandas as pd
import runtime
import streamlit as st
from PIL import Image
from pydantic import BaseModel

from asifdb.blobs import BlobNotFound, sha256_of_uri
from asifdb.schemas.models import ModelInfo
from asifdb.schemas.pairs import Pair
from asifdb.services import collection, models, pairs

_THUMBNAIL = 96


@st.cache_data(max_entries=4096, show_spinner=False)
def thumbnail(blob_uri: str) -> str | None:
    """A small PNG of the blob as a data URI (blobs are content-addressed: safe to cache)."""
    try:
        data = runtime.platform().blobs.get(sha256_of_uri(blob_uri))
    except BlobNotFound:
        return None
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB")
        small.thumbnail((_THUMBNAIL, _THUMBNAIL))
    buffer = io.BytesIO()
    small.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def pairs_table(rows: Sequence[BaseModel], columns: dict[str, Any]) -> None:
    """Rows (public schemas) that each have a `pair_id`, with the pair's thumbnail first where
    the key may read pairs; `columns` maps each shown field to its `st.column_config` (or a
    label)."""
    frame = pd.DataFrame([row.model_dump() for row in rows], columns=["pair_id", *columns])
    if gate.may("pairs:read"):
        gate.allow("pairs:read")
        with runtime.platform().sessions() as session:
            uris = collection.blob_uris(session, pair_ids=[int(i) for i in frame["pair_id"]])
        thumbnails = [thumbnail(u) if (u := uris.get(int(i))) else None for i in frame["pair_id"]]
        frame.insert(0, "image", thumbnails)
    st.dataframe(
        frame,
        hide_index=True,
        row_height=_THUMBNAIL // 2 + 8,
        column_config={
            "image": st.column_config.ImageColumn("image", width="small"),
            "pair_id": st.column_config.NumberColumn("pair", format="%d"),
            **columns,
        },
    )


def pair_detail(pair_id: int) -> Pair:
    """The pair's image, caption, licence and provenance, drawn (the API's pairs:read); returns
    what `pairs.get` says."""
    gate.allow("pairs:read")
    with runtime.platform().sessions() as session:
        pair = pairs.get(session, pair_id=pair_id)
    left, right = st.columns([1, 2])
    if pair.blob_uri:
        try:
            left.image(runtime.platform().blobs.get(sha256_of_uri(pair.blob_uri)), width=224)
        except BlobNotFound:
            left.warning("The original image is missing from the blob store.")
    else:
        left.info("Deleted: the original image is gone.")
    licence = pair.license
    right.markdown(f"**Pair {pair.id}** — {pair.caption}")
    right.markdown(
        f"Licence **{licence.name}** ({licence.status}) · collection "
        f"**{pair.collection}** · {'usable' if pair.usable else 'not usable'} · "
        f"carried {pair.evidence_count} predictions"
    )
    right.json(
        {
            "status": pair.status,
            "status_reason": pair.status_reason,
            "deleted_at": str(pair.deleted_at) if pair.deleted_at else None,
            "deleted_by": pair.deleted_by,
            "license": licence.model_dump(),
            "provenance": {k: str(v) for k, v in pair.provenance.model_dump().items()},
            "embedded by": pair.embedded_by,
            "size": [pair.width, pair.height],
            "sha256": pair.image_sha256,
        },
        expanded=False,
    )
    return pair


def model_choice(key: str) -> ModelInfo:
    """A select box of the ready models, the default first (what a query may name)."""
    platform = runtime.platform()
    with platform.sessions() as session:
        ready = [m for m in models.list_models(session, platform.settings) if m.status == "ready"]
    return st.selectbox(
        "Model",
        ready,
        format_func=lambda m: f"{m.name} ({m.image_encoder} + {m.text_encoder})",
        key=key,
    )
