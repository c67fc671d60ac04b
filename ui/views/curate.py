"""Curate: the pairs that mislead the model (mismatched captions, near-duplicates, harmful on a
labelled folder) and the acts on them (mark for review, reject, restore, revoke the licence)."""

from collections.abc import Sequence

import gate
import panels
import runtime
import streamlit as st
from pydantic import BaseModel

from asifdb.services import curation, evaluation
from asifdb.services.classify import Options
from asifdb.services.uploads import UploadLimits

# What the page needs (the API's permission name; None: any signed-in key).
PERMISSION = "impact:read"

# As the API's /v1/curation: reading the lists needs what the steward, auditor and admin roles
# share; acting needs what only the steward and admin roles carry.
_READ, _ACT = "impact:read", "pairs:delete"


def _rerun_if_done() -> None:
    """Rerun once the act's transaction has committed (a rerun inside it would roll it back)."""
    if "curate.done" in st.session_state:
        st.rerun()


def _table(rows: Sequence[BaseModel], key: str) -> None:
    st.dataframe([row.model_dump() for row in rows], hide_index=True, key=key)


def _act(pair_ids: list[int], key: str) -> None:
    """Mark, reject or revoke the pairs chosen among `pair_ids`."""
    allowed = gate.may(_ACT)
    may_revoke = allowed and gate.may("licenses:write")
    with st.form(f"curate.{key}.act"):
        chosen = st.multiselect("Pairs", pair_ids, key=f"curate.{key}.chosen", disabled=not allowed)
        reason = st.text_input("Reason (kept in the audit log)", key=f"curate.{key}.reason")
        mark, reject, revoke = st.columns(3)
        marked = mark.form_submit_button(
            "Mark for review", key=f"curate.{key}.mark", disabled=not allowed
        )
        rejected = reject.form_submit_button(
            "Reject", key=f"curate.{key}.reject", disabled=not allowed
        )
        revoked = revoke.form_submit_button(
            "Revoke their licence", key=f"curate.{key}.revoke", disabled=not may_revoke
        )
    sessions = runtime.platform().sessions
    if marked:
        with runtime.reported(), sessions.begin() as session:
            who = gate.allow(_ACT)
            done = curation.mark(session, pair_ids=chosen, actor=who.name, reason=reason or None)
            st.session_state["curate.done"] = f"Marked {done.marked} pairs for review."
    if rejected:
        with runtime.reported(), sessions.begin() as session:
            who = gate.allow(_ACT)
            done = curation.reject(session, pair_ids=chosen, actor=who.name, reason=reason)
            st.session_state["curate.done"] = (
                f"Rejected {done.rejected} pairs: {done.pairs_removed} left the model "
                f"(model version {done.model_version})."
            )
    if revoked:
        with runtime.reported(), sessions.begin() as session:
            who = gate.allow("licenses:write")
            done = curation.revoke_licences(session, pair_ids=chosen, actor=who.name, reason=reason)
            names = ", ".join(r.license for r in done.revoked) or "none (already revoked)"
            st.session_state["curate.done"] = f"Revoked licences: {names}."
    _rerun_if_done()


def _pager(key: str) -> tuple[int, int]:
    size = st.number_input("Page size", 1, curation.MAX_PAGE, 20, key=f"curate.{key}.size")
    page = st.number_input("Page", 1, 100_000, 1, key=f"curate.{key}.page")
    return int(size), (int(page) - 1) * int(size)


def _mismatches() -> None:
    platform = runtime.platform()
    if st.button("Score new pairs", disabled=not gate.may(_ACT)):
        with runtime.reported(), platform.sessions.begin() as session:
            gate.allow(_ACT)
            done = curation.refresh_fit(session, live=platform.live)
            st.session_state["curate.done"] = (
                f"Scored {done.scored} pairs in {curation.SPACES[done.aligned]}."
            )
        _rerun_if_done()
    limit, offset = _pager("mismatches")
    gate.allow(_READ)
    with platform.sessions() as session:
        page = curation.mismatches(session, limit=limit, offset=offset)
    st.caption(
        f"{page.scored} of {page.usable_pairs} usable pairs scored, {page.unscored} "
        f"unscored; {page.pairs_changed_since_oldest} pairs changed since the oldest score."
    )
    if page.mixed_spaces:
        st.warning(f"{curation.MIXED_SPACES}: {page.scored_in}")
    _table(page.items, "curate.mismatches.table")
    _act([r.pair_id for r in page.items], "mismatches")


def _duplicates() -> None:
    platform = runtime.platform()
    if st.button("Find near-duplicates", disabled=not gate.may(_ACT)):
        with runtime.reported(), platform.sessions.begin() as session:
            gate.allow(_ACT)
            done = curation.refresh_duplicates(session, live=platform.live)
            st.session_state["curate.done"] = (
                f"{done.groups} groups of near-duplicates ({done.pairs_in_groups} pairs)."
            )
        _rerun_if_done()
    limit, offset = _pager("duplicates")
    gate.allow(_READ)
    with platform.sessions() as session:
        page = curation.duplicates(session, limit=limit, offset=offset)
    rows = [
        {"group": g.group_id, **m.model_dump(), "keep": "keep" if m.keeper else ""}
        for g in page.groups
        for m in g.pairs
    ]
    st.caption(f"{page.total_groups} groups; the suggested keeper is listed first.")
    st.dataframe(rows, hide_index=True, key="curate.duplicates.table")
    _act([m.pair_id for g in page.groups for m in g.pairs], "duplicates")


def _value() -> None:
    with st.form("curate.value"):
        archive = st.file_uploader("A zip of labelled images (<class>/<image>)", type=["zip"])
        templates = st.selectbox("Templates", ["default", "cifar", "imagenet"])
        chosen = panels.model_choice("curate.value.model")
        submitted = st.form_submit_button("Value the pairs (dry run)")
    if submitted and archive is None:
        st.error("Choose a zip of class folders first.")
    elif submitted:
        _value_report(archive.getvalue(), templates, None if chosen.default else chosen.name)
    report = st.session_state.get("curate.value")
    if report:
        _table(report.what_if, "curate.value.what_if")
        st.subheader("Most harmful")
        _table(report.harmful, "curate.value.harmful")
        _act([r.pair_id for r in report.harmful], "value")
        st.subheader("Most helpful")
        _table(report.helpful, "curate.value.helpful")


def _value_report(archive: bytes, templates: str, model: str | None) -> None:
    platform = runtime.platform()
    settings = platform.settings
    with runtime.reported(), platform.sessions() as session, st.spinner("Classifying…"):
        gate.allow(_READ)
        with evaluation.labelled_archive(
            archive,
            uploads_dir=settings.data_dir / "uploads",
            max_images=settings.max_value_images,
            limits=UploadLimits(max_files=settings.max_value_images),
        ) as labelled:
            handle = platform.model(model)
            report = curation.pair_values(
                session,
                live=handle.live,
                encoders=handle.encoders,
                labelled=labelled,
                templates=templates,
                options=Options.of(settings, model=handle.ref),
            )
        st.session_state["curate.value"] = report


def _reviews() -> None:
    platform = runtime.platform()
    limit, offset = _pager("reviews")
    gate.allow(_READ)
    with platform.sessions() as session:
        page = curation.reviews(session, limit=limit, offset=offset)
    st.caption(f"{page.total} pairs marked for review.")
    _table(page.items, "curate.reviews.table")
    _act([r.pair_id for r in page.items], "reviews")


def _rejected_restore() -> None:
    allowed = gate.may(_ACT)
    with st.form("curate.restore"):
        ids = st.text_input("Rejected pair ids to restore (comma-separated)", disabled=not allowed)
        submitted = st.form_submit_button("Restore", disabled=not allowed)
    if submitted:
        with runtime.reported(), runtime.platform().sessions.begin() as session:
            who = gate.allow(_ACT)
            pair_ids = [int(i) for i in ids.replace(" ", "").split(",") if i.isdigit()]
            done = curation.restore(session, pair_ids=pair_ids, actor=who.name)
            st.session_state["curate.done"] = (
                f"Restored {done.restored} pairs: {done.pairs_returned} back in the model."
            )
        _rerun_if_done()


def render() -> None:
    st.title("Curate")
    with runtime.reported():
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


if __name__ == "__main__":  # run by Streamlit as a page of ui/app.py
    gate.open_page(render, PERMISSION)
