"""One poison item never blocks its job: what the database cannot store is rejected with a
reason, and the rest of the upload goes in (real database, the worker's batch code)."""

from pathlib import Path

from sqlalchemy import select

from asifdb.context import Platform
from asifdb.db.models import Job
from asifdb.services import ingestion, uploads
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.samples import ingest_now, real_jpeg


def test_a_nul_in_a_file_name_rejects_that_item_only(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    platform.__dict__["encoders"] = encoders
    second = next((shared_data / "cifar10" / "test" / "dog").glob("*.png")).read_bytes()
    jsonl = uploads.stage(
        uploads_dir=tmp_path / "uploads",
        files=[("ok.jpg", real_jpeg()), ("evil\x00name.jpg", second)],
        captions=["a photo of a cat", "a photo of a dog"],
        actor="annotator",
    )
    ingest_now(platform, jsonl, "poison")
    with platform.sessions() as session:
        job_id = session.scalars(select(Job.id)).one()
        report = ingestion.job_report(session, job_id=job_id)
    platform.close()
    assert report.status in ("done", "partial"), report
    assert (report.done, report.rejected) == (1, 1), report
    (reject,) = report.rejects
    assert "NUL" in reject.reason
