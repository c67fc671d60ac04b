"""A job over a hostile local source (real database, the worker's batch code): system files,
links out of the root and a FIFO end as rejects whose reasons quote nothing, the job never
hangs, and reports and provenance show paths relative to the source root."""

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select, text

from asifdb.context import Platform
from asifdb.db.models import Job
from asifdb.errors import Forbidden
from asifdb.services import ingestion, licences
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.samples import asifdb_cli, cli_env, process_job

SECRET = "the-secret-caption-line"


@pytest.mark.timeout(300)
def test_a_hostile_jsonl_ends_in_rejects_and_relative_paths(
    db_url: str, tmp_path: Path, encoders: Encoders, shared_data: Path
) -> None:
    root = tmp_path / "sources"
    data = root / "cats"
    data.mkdir(parents=True)
    (tmp_path / "secret.txt").write_text(SECRET)
    cats = sorted((shared_data / "cifar10" / "test" / "cat").glob("*.png"))[:2]
    for cat in cats:
        (data / cat.name).write_bytes(cat.read_bytes())
    (data / "link.png").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(data / "pipe.png")
    lines = [
        {"image": cats[0].name, "caption": "a cat"},
        {"image": "/etc/passwd", "caption": "a cat"},
        {"image": "/etc/shadow", "caption": "a cat"},
        {"image": "../../../../../../../etc/passwd", "caption": "a cat"},
        {"image": "link.png", "caption": "a cat"},
        {"image": "pipe.png", "caption": "a cat"},
        {"image": "/dev/zero", "caption": "a cat"},
        {"image": cats[1].name, "caption": "another cat"},
    ]
    (data / "pairs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    platform.__dict__["encoders"] = encoders
    with platform.sessions.begin() as session:
        licences.create(session, name="cats", actor="test")
        with pytest.raises(Forbidden) as outside:
            ingestion.start_job(
                session, source="/etc", roots=[root], license_name="cats", actor="test"
            )
        assert "/etc" not in str(outside.value)
        job = ingestion.start_job(
            session,
            source=str(data / "pairs.jsonl"),
            roots=[root],
            license_name="cats",
            actor="test",
        )
    process_job(platform, job.id)
    with platform.sessions() as session:
        job_id = session.scalars(select(Job.id)).one()
        report = ingestion.job_report(session, job_id=job_id)
        provenance = session.execute(text("SELECT source_uri, caption FROM pairs")).all()
        audit = session.execute(text("SELECT details FROM audit_events")).scalars().all()
    platform.close()

    assert report.status == "done" and (report.done, report.rejected) == (2, 6), report
    assert report.source == "cats/pairs.jsonl"
    assert report.reject_reasons == {"outside_source": 5, "not_a_file": 1}
    shown = json.dumps([report, audit], default=str)
    assert str(tmp_path) not in shown and "/etc" not in shown
    assert "root:" not in shown and SECRET not in shown
    assert sorted(provenance) == sorted(
        [(f"cats/{cats[0].name}", "a cat"), (f"cats/{cats[1].name}", "another cat")]
    )


def test_the_cli_ingests_only_under_source_roots(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, tmp_path / "data")
    assert asifdb_cli("licenses", "create", "x", env=env, timeout=300).returncode == 0
    env["SOURCE_ROOTS"] = json.dumps([str(tmp_path / "allowed")])
    (tmp_path / "allowed").mkdir()
    (tmp_path / "elsewhere").mkdir()
    for source in (
        "/etc",
        str(tmp_path / "elsewhere"),
        str(tmp_path / "allowed" / ".." / "elsewhere"),
    ):
        refused = asifdb_cli("ingest", source, "--license", "x", "--no-wait", env=env)
        assert refused.returncode != 0
        assert "SOURCE_ROOTS" in refused.stdout + refused.stderr
        assert "elsewhere" not in refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
