"""Collection: browse and search the pairs (caption text, or similarity to an uploaded image),
filtered by licence, collection, source and status; open any pair's provenance."""

import gate
import panels
import runtime
import streamlit as st

from asifdb.services import collection

# What the page needs (the API's permission name; None: any signed-in key).
PERMISSION = "pairs:read"

_PAGE = 50


def render() -> None:
    st.title("Collection")
    with runtime.reported():
        gate.allow("pairs:read")
        with runtime.platform().sessions() as session:
            facets = collection.facets(session)
        text, licence, name, source, status = st.columns([3, 2, 2, 3, 2])
        caption = text.text_input("Caption contains")
        chosen_licence = licence.selectbox("Licence", facets.licenses, index=None)
        chosen_collection = name.selectbox("Collection", facets.collections, index=None)
        chosen_source = source.selectbox("Source", facets.sources, index=None)
        chosen_status = status.selectbox("Status", facets.statuses, index=None)
        upload = st.file_uploader(
            "Or rank by similarity to an image", type=["jpg", "jpeg", "png", "webp", "bmp"]
        )
        page = st.number_input("Page", min_value=1, step=1, value=1)
        gate.allow("pairs:read")
        with runtime.platform().sessions() as session:
            found = collection.search(
                session,
                caption=caption,
                licence=chosen_licence,
                collection=chosen_collection,
                source=chosen_source,
                status=chosen_status,
                image=(upload.name, upload.getvalue()) if upload else None,
                encoders=runtime.platform().model().encoders if upload else None,
                limit=_PAGE,
                offset=(int(page) - 1) * _PAGE,
            )
        st.caption(f"{found.total} pairs match; page {page} shows {len(found.pairs)}.")
        columns = {
            "caption": "caption",
            "license": "licence",
            "collection": "collection",
            "status": "status",
            "added_at": st.column_config.DatetimeColumn("added", format="YYYY-MM-DD HH:mm"),
            "source_uri": "source",
        }
        if upload:
            columns = {
                "similarity": st.column_config.NumberColumn("image sim.", format="%.3f"),
                **columns,
            }
        if found.pairs:
            panels.pairs_table(found.pairs, columns)
            captions = {row.pair_id: row.caption for row in found.pairs}
            opened = st.selectbox(
                "Open a pair", list(captions), format_func=lambda i: f"pair {i} — {captions[i]}"
            )
            panels.pair_detail(opened)


if __name__ == "__main__":  # run by Streamlit as a page of ui/app.py
    gate.open_page(render, PERMISSION)
