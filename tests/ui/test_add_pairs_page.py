"""Add pairs: uploads become a job; its progress and its rejected items with their reasons."""

import io
import zipfile
from pathlib import Path

from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from asifdb.services import ingestion
from tests.ui.conftest import Ui, labelled
from tests.ui.seeding import OTHER_LICENCE


def _run_job(ui: Ui, job_id: int) -> None:
    """What the Celery worker does with the job's batches, done here in-process: the page sent
    them to the broker, but no worker consumes it in these tests."""
    with ui.platform.sessions() as session:
        batches = ingestion.BATCHES.pending(session, job_id)
    assert batches, "the job has work to do"
    for batch in batches:
        ingestion.process_batch(
            sessions=ui.platform.sessions,
            blobs=ui.platform.blobs,
            encoders=ui.platform.encoders,
            batch_id=batch,
        )


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _on(ui: Ui) -> AppTest:
    at = ui.app("annotator", "views/add_pairs.py")
    labelled(at.selectbox, "Licence").set_value(OTHER_LICENCE).run()
    labelled(at.text_input, "Collection").set_value("uploaded").run()
    return at


def test_images_with_captions_become_a_job_with_its_rejects(ui: Ui, shared_data: Path) -> None:
    at = _on(ui)
    frogs = sorted((shared_data / "cifar10" / "test" / "frog").iterdir())[:2]
    files = [(f.name, f.read_bytes(), "image/png") for f in frogs]
    at.file_uploader[0].set_value([*files, ("broken.png", b"not an image at all", "image/png")])
    labelled(at.text_area, "Captions, one line per image, in the order above").set_value(
        "a frog on a leaf\na green frog\na broken upload"
    ).run()
    at.button(key="add_pairs.images").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job_id = at.session_state["add_pairs.job"]
    assert at.subheader[0].value == f"Job {job_id}: queued"

    _run_job(ui, job_id)
    at.run()
    assert at.subheader[0].value == f"Job {job_id}: done"
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Ready"], metrics["Rejected"]) == ("2", "1")
    [reject] = at.dataframe[-1].value.to_dict("records")
    # Uploads are keyed by their line in the staged pairs.jsonl: the third file.
    assert reject["key"].endswith(":3"), reject
    assert reject["code"] == "not_an_image" and "not a readable image" in reject["reason"]
    with ui.platform.sessions() as session:
        added = session.execute(
            text("SELECT caption, added_by FROM pairs WHERE collection = 'uploaded' ORDER BY 1")
        ).all()
    assert [tuple(row) for row in added] == [
        ("a frog on a leaf", "annotator-key"),
        ("a green frog", "annotator-key"),
    ]


def test_a_zip_of_class_folders_is_captioned_by_the_template(ui: Ui, shared_data: Path) -> None:
    at = _on(ui)
    images = {
        f"eurosat/{name}/{i}.png": image.read_bytes()
        for name, folder in (("River", "ship"), ("Annual_Crop", "frog"))
        for i, image in enumerate(sorted((shared_data / "cifar10" / "test" / folder).iterdir())[:2])
    }
    [uploader] = [u for u in at.file_uploader if "zip" in u.label]
    uploader.set_value(("eurosat.zip", _zip(images), "application/zip"))
    labelled(at.text_input, "Caption template ({} is the class name)").set_value(
        "a satellite image of {}."
    )
    at.button(key="add_pairs.zip").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _run_job(ui, at.session_state["add_pairs.job"])
    at.run()
    assert {m.label: m.value for m in at.metric}["Ready"] == "4"
    with ui.platform.sessions() as session:
        captions = session.execute(
            text("SELECT DISTINCT caption FROM pairs WHERE collection = 'uploaded' ORDER BY 1")
        ).scalars()
        assert list(captions) == [
            "a satellite image of Annual Crop.",
            "a satellite image of River.",
        ]


def test_a_zip_that_would_write_outside_the_upload_is_refused(ui: Ui) -> None:
    at = _on(ui)
    [uploader] = [u for u in at.file_uploader if "zip" in u.label]
    uploader.set_value(("evil.zip", _zip({"../../escape/x.png": b"data"}), "application/zip"))
    at.button(key="add_pairs.zip").click().run()
    assert "would land outside the upload" in at.error[0].value
    assert "add_pairs.job" not in at.session_state
    assert not list((ui.data_dir / "uploads").rglob("x.png"))
