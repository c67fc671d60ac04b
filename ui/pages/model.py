"""Model: the encoders, ASIF's k and p, the usable pairs and the model version, and the health of
the database, migrations and broker behind them."""

import runtime
import streamlit as st

from asifdb.broker import broker_url
from asifdb.services import status

st.title("Model")
with runtime.reported():
    platform = runtime.platform()
    settings = platform.settings
    report = status.platform_status(
        engine=platform.engine,
        broker_url=broker_url(redis_url=settings.redis_url, database_url=platform.url),
    )
    model = report.get("model") or {}
    version, usable, k, p = st.columns(4)
    version.metric("Model version", model.get("version") or "—")
    usable.metric("Usable pairs", model.get("usable_pairs", 0))
    k.metric("k (default)", settings.k)
    p.metric("p (default)", settings.p)
    st.subheader("Encoders")
    st.dataframe(
        [
            {
                "modality": "image",
                "configured": settings.image_encoder,
                "the pairs' (model)": model.get("image_encoder"),
            },
            {
                "modality": "text",
                "configured": settings.text_encoder,
                "the pairs' (model)": model.get("text_encoder"),
            },
        ],
        hide_index=True,
    )
    st.subheader("Platform")
    for part in ("database", "migrations", "broker"):
        if part in report:
            ok = report[part]["ok"]
            st.markdown(f"{':green[ok]' if ok else ':red[not ok]'} — **{part}**")
            st.json(report[part], expanded=not ok)
