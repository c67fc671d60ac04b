"""Curate: the pairs that mislead the model (mismatched captions, near-duplicates, harmful on a
labelled folder) and the acts on them (mark for review, reject, restore, revoke the licence)."""

from typing import Any

import runtime
import streamlit as st

from asifdb.services import curation

_ACT = "pairs:delete"


def _rerun_if_done() -> None:
    """Rerun once the act's transaction has committed (a rerun inside it would roll it back)."""
    if "curate.done" in st.session_state:
        st.rerun()


def _act(rows: list[dict[str, Any]], key: str) -> None:
    """Mark, reject or revoke the pairs chosen among `rows`."""
    allowed = runtime.may(_ACT)
    chosen = st.multiselect(
        "Pairs", [r["pair_id"] for r in rows], key=f"curate.{key}.chosen", disabled=not allowed
    )
    reason = st.text_input("Reason (kept in the audit log)", key=f"curate.{key}.reason")
    mark, reject, revoke = st.columns(3)
    who = runtime.principal()
    platform = runtime.platform()
    if mark.button("Mark for review", key=f"curate.{key}.mark", disabled=not allowed):
        with runtime.reported(), platform.sessions.begin() as session:
            who.require(_ACT)
            done = curation.mark(session, pair_ids=chosen, actor=who.name, reason=reason or None)
            st.session_state["curate.done"] = f"Marked {done['marked']} pairs for review."
        _rerun_if_done()
    if reject.button("Reject", key=f"curate.{key}.reject", disabled=not allowed):
        with runtime.reported(), platform.sessions.begin() as session:
            who.require(_ACT)
            done = curation.reject(session, pair_ids=chosen, actor=who.name, reason=reason)
            st.session_state["curate.done"] = (
                f"Rejected {done['rejected']} pairs: {done['pairs_removed']} left the model "
                f"(model version {done['model_version']})."
            )
        _rerun_if_done()
    may_revoke = allowed and runtime.may("licenses:write")
    if revoke.button("Revoke their licence", key=f"curate.{key}.revoke", disabled=not may_revoke):
        with runtime.reported(), platform.sessions.begin() as session:
            who.require("licenses:write")
            done = curation.revoke_licences(session, pair_ids=chosen, actor=who.name, reason=reason)
            names = ", ".join(r["license"] for r in done["revoked"]) or "none (already revoked)"
            st.session_state["curate.done"] = f"Revoked licences: {names}."
        _rerun_if_done()


def _pager(key: str) -> tuple[int, int]:
    size = st.number_input("Page size", 1, curation.MAX_PAGE, 20, key=f"curate.{key}.size")
    page = st.number_input("Page", 1, 100_000, 1, key=f"curate.{key}.page")
    return int(size), (int(page) - 1) * int(size)


def _mismatches() -> None:
    platform = runtime.platform()
    if st.button("Score new pairs", disabled=not runtime.may(_ACT)):
        with runtime.reported(), platform.sessions.begin() as session:
            runtime.principal().require(_ACT)
            done = curation.refresh_fit(session, live=platform.live)
            st.session_state["curate.done"] = (
                f"Scored {done['scored']} pairs in {curation.SPACES[done['aligned']]}."
            )
        _rerun_if_done()
    limit, offset = _pager("mismatches")
    with platform.sessions() as session:
        page = curation.mismatches(session, limit=limit, offset=offset)
    st.caption(
        f"{page['scored']} of {page['usable_pairs']} usable pairs scored, {page['unscored']} "
        f"unscored; {page['pairs_changed_since_oldest']} pairs changed since the oldest score."
    )
    if page["mixed_spaces"]:
        st.warning(f"{curation.MIXED_SPACES}: {page['scored_in']}")
    st.dataframe(page["items"], hide_index=True, key="curate.mismatches.table")
    _act(page["items"], "mismatches")


def _duplicates() -> None:
    platform = runtime.platform()
    if st.button("Find near-duplicates", disabled=not runtime.may(_ACT)):
        with runtime.reported(), platform.sessions.begin() as session:
            runtime.principal().require(_ACT)
            done = curation.refresh_duplicates(session, live=platform.live)
            st.session_state["curate.done"] = (
                f"{done['groups']} groups of near-duplicates ({done['pairs_in_groups']} pairs)."
            )
        _rerun_if_done()
    limit, offset = _pager("duplicates")
    with platform.sessions() as session:
        page = curation.duplicates(session, limit=limit, offset=offset)
    rows = [
        {"group": g["group_id"], **m, "keep": "keep" if m["keeper"] else ""}
        for g in page["groups"]
        for m in g["pairs"]
    ]
    st.caption(f"{page['total_groups']} groups; the suggested keeper is listed first.")
    st.dataframe(rows, hide_index=True, key="curate.duplicates.table")
    _act(rows, "duplicates")


def _value() -> None:
    platform = runtime.platform()
    folder = st.text_input("Labelled folder on the server (one sub-folder a class)")
    templates = st.selectbox("Templates", ["default", "cifar", "imagenet"])
    if not st.button("Value the pairs (dry run)", disabled=not folder):
        return
    with runtime.reported(), platform.sessions() as session, st.spinner("Classifying…"):
        report = curation.pair_values(
            session,
            live=platform.live,
            encoders=platform.encoders,
            folder=folder,
            templates=templates,
            k=platform.settings.k,
            p=platform.settings.p,
        )
        st.session_state["curate.value"] = report
    report = st.session_state.get("curate.value")
    if report:
        st.dataframe(report["what_if"], hide_index=True, key="curate.value.what_if")
        st.subheader("Most harmful")
        st.dataframe(report["harmful"], hide_index=True, key="curate.value.harmful")
        _act(report["harmful"], "value")
        st.subheader("Most helpful")
        st.dataframe(report["helpful"], hide_index=True, key="curate.value.helpful")


def _reviews() -> None:
    platform = runtime.platform()
    limit, offset = _pager("reviews")
    with platform.sessions() as session:
        page = curation.reviews(session, limit=limit, offset=offset)
    st.caption(f"{page['total']} pairs marked for review.")
    st.dataframe(page["items"], hide_index=True, key="curate.reviews.table")
    _act(page["items"], "reviews")


def _rejected_restore() -> None:
    allowed = runtime.may(_ACT)
    ids = st.text_input("Rejected pair ids to restore (comma-separated)", disabled=not allowed)
    if st.button("Restore", disabled=not allowed):
        with runtime.reported(), runtime.platform().sessions.begin() as session:
            who = runtime.principal()
            who.require(_ACT)
            pair_ids = [int(i) for i in ids.replace(" ", "").split(",") if i.isdigit()]
            done = curation.restore(session, pair_ids=pair_ids, actor=who.name)
            st.session_state["curate.done"] = (
                f"Restored {done['restored']} pairs: {done['pairs_returned']} back in the model."
            )
        _rerun_if_done()


st.title("Curate")
with runtime.reported():
    runtime.principal().require("impact:read")
    if done := st.session_state.pop("curate.done", None):
        st.success(done)
    mismatched, duplicated, valued, queued = st.tabs(
        ["Mismatched captions", "Near-duplicates", "Pair value", "Review queue"]
    )
    with mismatched:
        _mismatches()
    with duplicated:
        _duplicates()
    with valued:
        _value()
    with queued:
        _reviews()
        _rejected_restore()
