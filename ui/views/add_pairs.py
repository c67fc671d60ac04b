"""Add pairs: images with their captions, or a zip of class folders with a caption template,
under a licence and a collection; then follow the job and see what was rejected and why."""

from pathlib import Path

import gate
import runtime
import streamlit as st

from asifdb.services import collection, ingestion, licences, submit, uploads
from asifdb.services.keys import Principal

# What the page needs (the API's permission name; None: any signed-in key).
PERMISSION = "pairs:add"

_JOB = "add_pairs.job"
_RUNNING = ("queued", "running")


def _start(
    source: Path, *, who: Principal, kind: str, licence: str, name: str, template: str | None
) -> None:
    """Create the job and send its batches to the workers."""
    done = submit.ingestion_job(
        runtime.platform(),
        source=source,
        roots=[runtime.platform().settings.data_dir / "uploads"],
        kind=kind,
        template=template,
        license_name=licence,
        actor=who.name,
        collection=name,
    )
    st.session_state[_JOB] = done.job.id
    if done.note:
        st.warning(done.note)


def _captioned_images(licence: str, name: str) -> None:
    files = st.file_uploader(
        "Images",
        type=["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"],
        accept_multiple_files=True,
    )
    typed = st.text_area("Captions, one line per image, in the order above", height=160)
    captions = typed.splitlines()
    if files:
        st.dataframe(
            {
                "image": [f.name for f in files],
                "caption": [captions[i] if i < len(captions) else "" for i in range(len(files))],
            },
            hide_index=True,
        )
    if st.button("Add pairs", type="primary", disabled=not files, key="add_pairs.images"):
        with runtime.reported():
            who = gate.allow("pairs:add")
            staged = uploads.stage(
                uploads_dir=runtime.platform().settings.data_dir / "uploads",
                files=[(f.name, f.getvalue()) for f in files],
                captions=captions,
                actor=who.name,
            )
            _start(staged, who=who, kind="jsonl", licence=licence, name=name, template=None)


def _class_folders(licence: str, name: str) -> None:
    with st.form("add_pairs.folders"):
        archive = st.file_uploader("A zip of class folders (<class>/<image>)", type=["zip"])
        template = st.text_input(
            "Caption template ({} is the class name)",
            value="a photo of a {}.",
            key="add_pairs.tpl",
        )
        submitted = st.form_submit_button("Add pairs", type="primary", key="add_pairs.zip")
    if submitted and archive is None:
        st.error("Choose a zip of class folders first.")
    elif submitted:
        with runtime.reported():
            who = gate.allow("pairs:add")
            folder = collection.stage_class_folders(
                uploads_dir=runtime.platform().settings.data_dir / "uploads",
                archive=archive.getvalue(),
            )
            _start(
                folder,
                who=who,
                kind="class_folders",
                licence=licence,
                name=name,
                template=template,
            )


def _report(job_id: int, *, refreshing: bool) -> None:
    gate.allow("jobs:read")
    with runtime.platform().sessions() as session:
        report = ingestion.job_report(session, job_id=job_id, rejects=200)
    if refreshing and report.status not in _RUNNING:
        st.rerun()  # the whole page, which stops refreshing now the job has ended
    st.subheader(f"Job {report.id}: {report.status}")
    st.progress(
        report.processed / max(report.total, 1),
        text=f"{report.processed} of {report.total} items",
    )
    ready, duplicates, rejected = st.columns(3)
    ready.metric("Ready", report.done)
    duplicates.metric("Duplicates", report.duplicates)
    rejected.metric("Rejected", report.rejected)
    if report.error:
        st.error(report.error)
    for state, rows in (
        ("failed for good", report.failed_batches),
        ("being retried", report.retrying_batches),
    ):
        if rows:
            st.markdown(f"**Batches {state}**")
            st.dataframe([row.model_dump() for row in rows], hide_index=True)
    if report.rejects:
        st.markdown("**Rejected items, and why**")
        st.dataframe([row.model_dump() for row in report.rejects], hide_index=True)
    st.caption(f"{report.kind} source {report.source} → collection {report.collection}")


def _follow(job_id: int) -> None:
    """The job's progress, refreshed every two seconds while it runs (only that part reruns)."""
    gate.allow("jobs:read")
    with runtime.platform().sessions() as session:
        running = ingestion.job_report(session, job_id=job_id, rejects=0).status in _RUNNING
    st.fragment(run_every=2 if running else None)(_report)(job_id, refreshing=running)


def render() -> None:
    st.title("Add pairs")
    with runtime.reported():
        gate.allow("licenses:read")
        with runtime.platform().sessions() as session:
            active = [r.name for r in licences.list_all(session) if r.status == "active"]
        left, right = st.columns(2)
        licence = left.selectbox("Licence", active, index=None, placeholder="Choose a licence")
        name = right.text_input("Collection", value="default")
        if licence is None:
            st.info("Choose the licence the pairs come under (create one on the Licences page).")
        else:
            images, folders = st.tabs(["Images with captions", "Class folders (zip)"])
            with images:
                _captioned_images(licence, name)
            with folders:
                _class_folders(licence, name)

    st.divider()
    watched = st.number_input("Follow job", min_value=1, step=1, value=st.session_state.get(_JOB))
    if watched is not None:
        st.session_state[_JOB] = int(watched)
        with runtime.reported():
            _follow(int(watched))


if __name__ == "__main__":  # run by Streamlit as a page of ui/app.py
    gate.open_page(render, PERMISSION)
