"""Licences: each with its pair counts and status; create, revoke (with a reason), restore,
erase (for good, confirmed by typing the name) with its report; the impact report (the
predictions a licence carried, re-run now without its pairs)."""

import gate
import runtime
import streamlit as st

from asifdb.schemas.licenses import License
from asifdb.services import erasure, impact, licences

# What the page needs (the API's permission name; None: any signed-in key).
PERMISSION = "licenses:read"


def _table(rows: list[License]) -> None:
    st.dataframe(
        [row.model_dump() for row in rows],
        hide_index=True,
        column_order=[
            "id",
            "name",
            "status",
            "pairs",
            "usable_pairs",
            "holder",
            "terms_url",
            "revoked_at",
            "revoked_by",
            "reason",
        ],
        column_config={
            "usable_pairs": "usable pairs",
            "terms_url": st.column_config.LinkColumn("terms"),
        },
    )


def _create() -> None:
    with st.expander("New licence"), st.form("licences.create", clear_on_submit=True):
        name = st.text_input("Name")
        holder = st.text_input("Holder")
        terms = st.text_input("Terms URL")
        submitted = st.form_submit_button("Create", disabled=not gate.may("licenses:write"))
    if submitted:
        with runtime.reported():
            who = gate.allow("licenses:write")
            with runtime.platform().sessions.begin() as session:
                licences.create(
                    session,
                    name=name,
                    holder=holder or None,
                    terms_url=terms or None,
                    actor=who.name,
                )
            st.session_state["licences.done"] = f"Created licence {name.strip()}."
            st.rerun()


def _revoke_or_restore(licence: License) -> None:
    allowed = gate.may("licenses:write")
    if licence.status == "active":
        with st.form("licences.revoke"):
            reason = st.text_input("Reason (kept in the audit log)", key="licences.reason")
            revoke = st.form_submit_button(
                f"Revoke {licence.name}", type="primary", disabled=not allowed
            )
        if revoke:
            with runtime.reported():
                who = gate.allow("licenses:write")
                with runtime.platform().sessions.begin() as session:
                    done = licences.revoke(
                        session, licence=licence.id, reason=reason, actor=who.name
                    )
                st.session_state["licences.done"] = (
                    f"Revoked {done.license}: {done.pairs_removed} pairs left the model "
                    f"(model version {done.model_version})."
                )
                st.rerun()
        return
    if licence.status == "erased":
        _erasure_report(licence)
        return
    st.markdown(
        f"Revoked {licence.revoked_at:%Y-%m-%d %H:%M} by {licence.revoked_by}: {licence.reason}"
    )
    _erase(licence)
    if st.button(f"Restore {licence.name}", disabled=not allowed):
        with runtime.reported():
            who = gate.allow("licenses:write")
            with runtime.platform().sessions.begin() as session:
                done = licences.restore(session, licence=licence.id, actor=who.name)
            st.session_state["licences.done"] = (
                f"Restored {done.license}: {done.pairs_restored} pairs are back "
                f"(model version {done.model_version})."
            )
            st.rerun()


def _erase(licence: License) -> None:
    """Erasure, for a revoked licence: what will be lost, then the name typed to confirm."""
    if not gate.may("licenses:erase"):
        return
    with st.expander(f"Erase {licence.name} for good"):
        gate.allow("licenses:erase")
        with runtime.platform().sessions() as session:
            preview = erasure.preview(session, licence=licence.id)
        st.warning(
            f"Erasing removes for good {preview.pairs} pairs (captions and embeddings) and "
            f"{preview.images} images from the platform; "
            f"{preview.predictions_with_evidence} recorded predictions keep their evidence as "
            "ids and scores only. It cannot be undone, and a restore is no longer possible."
        )
        with st.form("licences.erase"):
            reason = st.text_input("Reason (kept in the audit log)", key="licences.erase_reason")
            typed = st.text_input(f"Type {licence.name} to confirm", key="licences.confirm")
            go = st.form_submit_button("Erase", type="primary")
        if go:
            with runtime.reported():
                who = gate.allow("licenses:erase")
                with st.spinner("Erasing: removing, rewriting the tables, checking…"):
                    report = erasure.erase_on(
                        runtime.platform(),
                        licence=licence.id,
                        reason=reason,
                        actor=who.name,
                        confirm=typed,
                    )
                verdict = "every check passed" if report.passed else "a check FAILED"
                st.session_state["licences.done"] = (
                    f"Erased {report.license}: {report.removed.get('pairs', 0)} pairs and "
                    f"{report.removed.get('blobs_removed', 0)} images removed; {verdict}."
                )
                st.rerun()


def _erasure_report(licence: License) -> None:
    with runtime.platform().sessions() as session:
        report = erasure.report(session, licence=licence.id)
    st.markdown(
        f"Erased by {report.erased_by} ({report.status}, model version "
        f"{report.model_version}): {report.reason}"
    )
    (st.success if report.passed else st.error)(
        "Every check passed." if report.passed else "A check failed or has not run yet."
    )
    st.dataframe(
        [{"removed": k.replace("_", " "), "count": v} for k, v in report.removed.items()],
        hide_index=True,
    )
    st.dataframe(
        [{"check": c.name, "passed": c.passed, "detail": c.detail} for c in report.checks],
        hide_index=True,
    )
    st.markdown("**What the platform cannot erase**")
    st.markdown("\n".join(f"- {line}" for line in report.not_erased))


def _impact(licence: License) -> None:
    sample = st.number_input("Predictions to re-run", 1, 200, 20)
    if not st.button("Impact report", disabled=not gate.may("impact:read")):
        return
    gate.allow("impact:read")
    platform = runtime.platform()
    with st.spinner("Re-running the predictions this licence carried…"):
        report = impact.licence_impact(
            sessions=platform.sessions,
            model_of=platform.model,
            blobs=platform.blobs,
            licence=licence.id,
            sample=int(sample),
        )
    pairs, usable, influenced, changed = st.columns(4)
    pairs.metric("Pairs", report.pairs)
    usable.metric("Usable now", report.usable_pairs)
    influenced.metric("Predictions influenced", report.predictions_influenced)
    changed.metric("Changed without it", f"{report.changed} of {report.sample_size}")
    st.caption(report.method)
    st.dataframe(
        [
            {
                "prediction": row.prediction_id,
                "at": row.created_at,
                "label then": row.label_then,
                "label now": row.rerun.label if row.rerun else None,
                "changed": row.changed,
                "share of score": row.share_of_score,
                "evidence pairs": row.evidence_pairs,
                "note": row.note,
            }
            for row in report.sample
        ],
        hide_index=True,
    )


def render() -> None:
    st.title("Licences")
    with runtime.reported():
        gate.allow("licenses:read")
        with runtime.platform().sessions() as session:
            rows = licences.list_all(session)
        if done := st.session_state.pop("licences.done", None):
            st.success(done)
        _table(rows)
        _create()
        if rows:
            by_name = {row.name: row for row in rows}
            chosen = by_name[st.selectbox("Licence", list(by_name), key="licences.chosen")]
            _revoke_or_restore(chosen)
            st.subheader("Impact")
            with runtime.reported():
                _impact(chosen)


if __name__ == "__main__":  # run by Streamlit as a page of ui/app.py
    gate.open_page(render, PERMISSION)
