"""Audit: the prediction log with filters (time, client, label, licence), one prediction's
evidence, and how often each usable pair carried a prediction, never-used pairs included."""

from datetime import UTC, datetime, time, timedelta

import altair as alt
import gate
import pandas as pd
import panels
import runtime
import streamlit as st

from asifdb.blobs import BlobNotFound
from asifdb.schemas.predictions import PairUsage, PredictionSummary
from asifdb.services import collection, predictions

# What the page needs (the API's permission name; None: any signed-in key).
PERMISSION = "predictions:read"


def _log() -> list[PredictionSummary]:
    when, client, label, licence = st.columns([3, 2, 2, 2])
    today = datetime.now(UTC).date()
    period = when.date_input("Between", (today - timedelta(days=30), today))
    who = client.text_input("Client")
    what = label.text_input("Predicted label")
    gate.allow("licenses:read")
    with runtime.platform().sessions() as session:
        names = collection.facets(session).licenses
    influenced_by = licence.selectbox("Influenced by licence", names, index=None)
    since = until = None
    if len(period) == 2:
        since = datetime.combine(period[0], time.min, UTC)
        until = datetime.combine(period[1] + timedelta(days=1), time.min, UTC)
    gate.allow("predictions:read")
    with runtime.platform().sessions() as session:
        rows = predictions.list_recent(
            session,
            since=since,
            until=until,
            client=who.strip() or None,
            label=what.strip() or None,
            license_name=influenced_by,
        )
    st.caption(f"{len(rows)} predictions (newest first, at most 200)")
    st.dataframe([row.model_dump() for row in rows], hide_index=True)
    return rows


def _prediction(prediction_id: int) -> None:
    gate.allow("predictions:read")
    platform = runtime.platform()
    with platform.sessions() as session:
        found = predictions.get(session, prediction_id=prediction_id)
    picture, about = st.columns([1, 3])
    if found.input_sha256:
        try:
            picture.image(platform.blobs.get(found.input_sha256), caption=found.input_name)
        except BlobNotFound:
            picture.info("The input image was not kept.")
    about.markdown(
        f"**{found.predicted_label}** ({found.score:.4f}) · {found.task} by "
        f"{found.client} via {found.channel} at {found.created_at:%Y-%m-%d %H:%M:%S}"
    )
    about.json({"model": found.model.model_dump(), "candidates": found.candidates}, expanded=False)
    if scores := found.result.get("scores"):
        about.dataframe(
            pd.DataFrame(scores.items(), columns=["class", "score"]).sort_values(
                "score", ascending=False
            ),
            hide_index=True,
        )
    st.markdown(f"**Evidence** ({found.evidence_total} pairs; the 50 largest shown)")
    panels.pairs_table(
        found.evidence,
        {
            "rank": "rank",
            "caption": "caption",
            "license_name": "licence",
            "license_status": "licence status",
            "pair_deleted": "pair deleted",
            "image_similarity": st.column_config.NumberColumn("image sim.", format="%.3f"),
            "caption_similarity": st.column_config.NumberColumn("caption sim.", format="%.3f"),
            "contribution": st.column_config.NumberColumn("contribution", format="%.5f"),
            "share_of_score": st.column_config.NumberColumn("share", format="%.3f"),
        },
    )


def _usage() -> None:
    gate.allow("predictions:read")
    with runtime.platform().sessions() as session:
        usage = pd.DataFrame(
            [row.model_dump() for row in predictions.pair_usage(session)],
            columns=list(PairUsage.model_fields),
        )
    never = int((usage["uses"] == 0).sum())
    total, used, unused = st.columns(3)
    total.metric("Usable pairs", len(usage))
    used.metric("Carried a prediction", len(usage) - never)
    unused.metric("Never used", never)
    counts = usage.groupby("uses").size().reset_index(name="pairs")
    chart = (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("uses:O", title="predictions carried"),
            y=alt.Y("pairs:Q", title="pairs"),
            tooltip=["uses", "pairs"],
        )
    )
    st.altair_chart(chart, width="stretch")
    st.dataframe(usage, hide_index=True)


def render() -> None:
    st.title("Audit")
    with runtime.reported():
        log, usage = st.tabs(["Predictions", "Pair usage"])
        with log:
            rows = _log()
            if rows:
                chosen = st.selectbox(
                    "Open a prediction",
                    [row.id for row in rows],
                    format_func=lambda i: f"prediction {i}",
                )
                _prediction(chosen)
        with usage:
            _usage()


if __name__ == "__main__":  # run by Streamlit as a page of ui/app.py
    gate.open_page(render, PERMISSION)
