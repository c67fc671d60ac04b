"""`asifdb models default` while the platform runs (issue 21): every query and every batch
follows the switch with no restart, and none answers or records a mix of the two models.

- A query that read the model before the switch and runs after it takes the new k and p (the
  ones it left to the model), recorded with the new version; one whose encoders the switch
  changed is refused (409), never answered from the other model's anchors.
- An ingestion batch that the switch overtakes runs again with the new encoders: its pairs
  join the new default, none embedded by the old one alone.
- Pair value, its what-if, and a licence's impact re-runs go through the model by name (the
  default one after a switch, or a named one), as classify does: no 409 until a restart.

Real database, real encoders (and `Rolled`, the real image encoder's dimensions rolled: the
same cosines under another name), the services the API, CLI and UI call through `Platform`."""

from pathlib import Path

import pytest
from sqlalchemy import text

from asifdb.context import Platform
from asifdb.errors import Conflict
from asifdb.schemas.curation import PairValues
from asifdb.services import classify, curation, evaluation, impact, licences, models
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.integration.models.building import (
    Rolled,
    add_model,
    classify_one,
    first_image,
    ingest_shard,
    run_reencode,
)


@pytest.fixture
def platform(db_url: str, tmp_path: Path, encoders: Encoders) -> Platform:
    """A process's platform (the API's, the UI's): the configured encoders are the defaults,
    and it can load `rolled-lite0` by name as a worker or API would load any encoder."""
    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    platform.__dict__["encoders"] = encoders
    platform.__dict__["_encoders_by_name"] = {"rolled-lite0": Rolled(encoders.image)}
    with platform.sessions.begin() as session:
        licences.create(session, name="kept", actor="test")
    return platform


def _switch(platform: Platform, name: str) -> None:
    """`asifdb models default NAME`, its batches run here."""
    with platform.sessions.begin() as session:
        job = models.make_default(session, name=name, actor="steward")
    model = platform.model(name)
    assert run_reencode(platform.sessions, platform.blobs, model.encoders, job.id)[-1] == (
        "switched"
    )


def test_a_query_read_before_a_switch_takes_the_new_k_and_p_or_is_refused(
    platform: Platform, encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    sessions, blobs = platform.sessions, platform.blobs
    ingest_shard(sessions, blobs, encoders, tmp_path / "a", shared_data, n=10, offset=0)
    query = first_image(sessions, blobs)
    add_model(sessions, blobs, "k3", encoders, k=3)  # the default's encoders, another k
    add_model(sessions, blobs, "rolled", Encoders(Rolled(encoders.image), encoders.text))

    # Read as the API reads it (Platform.model, then the options from it), then the switch.
    handle = platform.model()
    asked = classify.Options.of(platform.settings, model=handle.ref)
    pinned = classify.Options.of(platform.settings, k=7, model=handle.ref)
    assert asked.k == platform.settings.k
    _switch(platform, "k3")
    answer = classify_one(sessions, handle.live, handle.encoders, query, options=asked)
    chosen = classify_one(sessions, handle.live, handle.encoders, query, options=pinned)
    with sessions() as session:
        recorded = session.execute(
            text("SELECT k, p, model_version FROM predictions WHERE id = :i"),
            {"i": answer.prediction_id},
        ).one()
        version = session.execute(text("SELECT version FROM model_state")).scalar_one()
    # The k it left to the model is the model's in its snapshot; the one it asked stays.
    assert (answer.k, answer.model_version) == (3, version)
    assert tuple(recorded) == (3, 8.0, version)
    assert len(answer.evidence) <= 3 and chosen.k == 7

    # Read before a switch that changes the image encoder: refused, nothing recorded.
    handle = platform.model()
    _switch(platform, "rolled")
    with sessions() as session:
        before = session.execute(text("SELECT count(*) FROM predictions")).scalar_one()
    with pytest.raises(Conflict, match="rolled-lite0"):
        classify_one(sessions, handle.live, handle.encoders, query, options=asked)
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM predictions")).scalar_one() == before
    # Read again (the next request): the new default answers.
    handle = platform.model()
    again = classify_one(sessions, handle.live, handle.encoders, query)
    assert (again.model, handle.encoders.image.name) == ("default", "rolled-lite0")


def test_an_ingestion_batch_overtaken_by_a_switch_runs_again_with_the_new_encoders(
    platform: Platform, encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    sessions, blobs = platform.sessions, platform.blobs
    ingest_shard(sessions, blobs, encoders, tmp_path / "a", shared_data, n=6, offset=0)
    add_model(sessions, blobs, "rolled", Encoders(Rolled(encoders.image), encoders.text))
    runs: list[str] = []

    def switch_once() -> None:
        # The batch has encoded by the old encoders and not committed: the switch commits
        # now, from another connection, as `asifdb models default` would.
        runs.append("encoded")
        if len(runs) == 1:
            _switch(platform, "rolled")

    ingest_shard(
        sessions,
        blobs,
        encoders,  # the worker's configured encoders: the old default's
        tmp_path / "b",
        shared_data,
        n=4,
        offset=6,
        collection="late",
        encoders_for=platform.encoders_of,
        on_encoded=switch_once,
    )
    assert runs == ["encoded", "encoded"]  # once with the old encoders, again with the new
    with sessions() as session:
        state = session.execute(text("SELECT image_encoder FROM model_state")).scalar_one()
        usable = session.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()
        late = session.execute(
            text(
                "SELECT count(*) FILTER (WHERE e.encoder = 'rolled-lite0'), "
                "count(*) FILTER (WHERE e.encoder = :old) "
                "FROM pair_embeddings e JOIN pairs p ON p.id = e.pair_id "
                "WHERE p.collection = 'late'"
            ),
            {"old": encoders.image.name},
        ).one()
    assert (state, usable) == ("rolled-lite0", 10)
    assert tuple(late) == (4, 0)  # embedded by the new default's encoder, none by the old


def test_pair_value_and_licence_impact_run_on_the_model_they_name(
    platform: Platform, encoders: Encoders, shared_data: Path, tmp_path: Path
) -> None:
    sessions, blobs = platform.sessions, platform.blobs
    with sessions.begin() as session:
        licences.create(session, name="other", actor="test")
    ingest_shard(
        sessions, blobs, encoders, tmp_path / "a", shared_data, n=4, offset=0, licence="other"
    )
    ingest_shard(sessions, blobs, encoders, tmp_path / "b", shared_data, n=12, offset=4)
    add_model(sessions, blobs, "rolled", Encoders(Rolled(encoders.image), encoders.text), k=3)
    folder = tmp_path / "labelled"
    for name in ("cat", "truck", "airplane"):
        (folder / name).mkdir(parents=True)
        for image in sorted((shared_data / "cifar10" / "test" / name).iterdir())[:4]:
            (folder / name / image.name).write_bytes(image.read_bytes())

    def value(name: str | None) -> PairValues:
        handle = platform.model(name)
        with sessions() as session:
            return curation.pair_values(
                session,
                live=handle.live,
                encoders=handle.encoders,
                labelled=evaluation.read_folder(folder, roots=[folder.parent]),
                options=classify.Options.of(platform.settings, model=handle.ref),
                counts=(0, 2),
                top=3,
            )

    named, before = value("rolled"), value(None)
    assert (named.model, named.k, named.usable_pairs) == ("rolled", 3, 16)
    assert (before.model, before.k) == ("default", 16)  # the settings' k, at most every pair

    # A prediction of the named model (the query is one of the other licence's pairs), re-run
    # by the impact report on that model: its k, its anchors less the licence's pairs.
    handle = platform.model("rolled")
    query = first_image(sessions, blobs)
    made = classify_one(sessions, handle.live, handle.encoders, query, k=3, blobs=blobs)
    report = impact.licence_impact(
        sessions=sessions, model_of=platform.model, blobs=blobs, licence="other", sample=5
    )
    [entry] = [e for e in report.sample if e.prediction_id == made.prediction_id]
    with sessions() as session:
        other = frozenset(
            session.scalars(
                text(
                    "SELECT p.id FROM pairs p JOIN licenses l ON l.id = p.license_id "
                    "WHERE l.name = 'other'"
                )
            )
        )
    without = classify_one(
        sessions,
        handle.live,
        handle.encoders,
        query,
        options=classify.Options(k=3, p=8.0, method="exact", exclude_pairs=other),
    )
    assert entry.note is None and entry.rerun is not None
    assert (entry.rerun.label, entry.rerun.score) == (without.label, without.score)

    # After a switch the default's pair value answers at once (in a process that does not
    # restart, as the API's), on the new encoders and with the model's k.
    _switch(platform, "rolled")
    after = value(None)
    assert (after.model, after.k) == ("default", 3)
    assert after.model_version > before.model_version
