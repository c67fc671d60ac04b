"""Curation services against the real database: mismatches, near-duplicates, pair value, acts."""

from pathlib import Path

import pytest
from sqlalchemy import text

from asifdb.context import Platform
from asifdb.errors import Conflict, InvalidInput
from asifdb.schemas.curation import Marked
from asifdb.services import classify, curation, evaluation, labelsets
from asifdb.services.classify import Options
from tests.integration.curation.conftest import CLASSES, NOISY, K, Seeded


def _fit(platform: Platform, **options: object) -> dict:
    with platform.sessions.begin() as session:
        return curation.refresh_fit(session, live=platform.live, k=K, p=8.0, **options)


def _mismatches(platform: Platform, **page: int) -> dict:
    with platform.sessions() as session:
        return curation.mismatches(session, **page)


def _usable(platform: Platform) -> int:
    with platform.sessions() as session:
        return session.execute(text("SELECT count(*) FROM usable_pairs")).scalar_one()


def test_swapped_captions_come_first_and_leave_with_their_licence(
    platform: Platform, seeded: Seeded
) -> None:
    done = _fit(platform)
    assert done.scored == done.usable_pairs == 60 + 3 + 2
    # 65 pairs are far too few to fit the modalities' alignment (ALIGN_PAIRS_PER_DIMENSION): the
    # encoders' own spaces are used.
    assert done.aligned is False

    # The three mislabelled pairs are among the five worst of 65 (a genuine CIFAR pair that
    # looks like another class may rank among them: 32x32 photos are hard).
    worst = _mismatches(platform, limit=5)
    noisy = [r for r in worst.items if r.license == NOISY]
    assert {r.caption for r in noisy} == seeded.noisy_captions
    assert worst.unscored == 0
    # Paginated: the second page continues the first, in the same order.
    first, second = _mismatches(platform, limit=5), _mismatches(platform, limit=5, offset=5)
    fits = [r.fit for r in first.items + second.items]
    assert fits == sorted(fits) and len(set(r.pair_id for r in first.items + second.items)) == 10

    with platform.sessions.begin() as session:
        curation.revoke_licences(
            session, pair_ids=[noisy[0].pair_id], actor="steward", reason="mislabelled"
        )
    after = _mismatches(platform, limit=500)
    assert NOISY not in {r.license for r in after.items}
    assert len(after.items) == 62


def test_fit_is_incremental(platform: Platform) -> None:
    _fit(platform)
    with platform.sessions() as session:
        before = dict(session.execute(text("SELECT pair_id, computed_at FROM pair_fit")).all())
    again = _fit(platform)
    assert again.scored == 0
    with platform.sessions.begin() as session:
        session.execute(text("DELETE FROM pair_fit WHERE pair_id IN (SELECT min(id) FROM pairs)"))
    assert _fit(platform).scored == 1
    with platform.sessions() as session:
        after = dict(session.execute(text("SELECT pair_id, computed_at FROM pair_fit")).all())
    assert sum(after[i] != before[i] for i in before) == 1
    assert _fit(platform, full=True).scored == 65


def test_rows_record_their_space_and_a_list_mixing_spaces_says_so(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    with platform.sessions.begin() as session:
        curation.refresh_fit(session, live=platform.live, k=K)
    status = _mismatches(platform, limit=3)
    assert status.scored_in[curation.SPACES[False]] == 65 and not status.mixed_spaces
    assert {(r.aligned, r.k, r.p) for r in status.items} == {(False, K, 8.0)}

    # The collection "crosses" the alignment's size (a threshold of 0 pairs a dimension) while
    # five pairs are unscored: an incremental refresh scores those five in the alignment.
    monkeypatch.setattr(curation.fit, "ALIGN_PAIRS_PER_DIMENSION", 0)  # where aligns() reads it
    with platform.sessions.begin() as session:
        session.execute(
            text("DELETE FROM pair_fit WHERE pair_id IN (SELECT id FROM pairs LIMIT 5)")
        )
    with platform.sessions.begin() as session:
        done = curation.refresh_fit(session, live=platform.live, k=K)
    assert (done.scored, done.aligned, done.p) == (5, True, curation.FIT_P[True])
    mixed = _mismatches(platform, limit=500)
    assert mixed.mixed_spaces
    assert mixed.scored_in[curation.SPACES[True]] == 5
    assert mixed.scored_in[curation.SPACES[False]] == 60
    assert sum(r.aligned for r in mixed.items) == 5

    with platform.sessions.begin() as session:
        curation.refresh_fit(session, live=platform.live, k=K, full=True)
    again = _mismatches(platform, limit=3)
    assert again.scored_in[curation.SPACES[True]] == 65 and not again.mixed_spaces


def test_near_duplicates_group_the_reencoded_copies_with_their_originals(
    platform: Platform, seeded: Seeded
) -> None:
    with platform.sessions.begin() as session:
        scored = curation.refresh_fit(session, live=platform.live, k=K)
        found = curation.refresh_duplicates(session, live=platform.live)
        page = curation.duplicates(session, limit=10)
        shas = {
            r.id: r.image_sha256
            for r in session.execute(text("SELECT id, image_sha256 FROM pairs"))
        }
    # p left to the service: the encoders' spaces' own.
    assert (scored.k, scored.p) == (K, curation.FIT_P[False])
    assert found.groups == page.total_groups == 2
    for group in page.groups:
        members = group.pairs
        assert len(members) == 2 and sum(m.keeper for m in members) == 1
        assert {m.license for m in members} == {"cifar", "copies"}
        keeper = next(m for m in members if m.keeper)
        assert keeper.fit == max(m.fit for m in members)
        assert {shas[m.pair_id] for m in members} & set(seeded.copied)
        assert group.cosine >= curation.DUPLICATE_THRESHOLD


def test_reject_takes_pairs_out_of_the_model_at_once_and_restore_brings_them_back(
    platform: Platform, shared_data: Path
) -> None:
    _fit(platform)
    worst = [r.pair_id for r in _mismatches(platform, limit=3).items]
    with platform.sessions.begin() as session, pytest.raises(InvalidInput, match="reason"):
        curation.reject(session, pair_ids=worst, actor="steward", reason=" ")
    with platform.sessions.begin() as session:
        marked = curation.mark(session, pair_ids=worst, actor="steward", reason="look")
        assert marked == Marked(marked=3, already_marked=0)
        assert curation.reviews(session).total == 3
    with platform.sessions.begin() as session:
        done = curation.reject(session, pair_ids=worst, actor="steward", reason="caption wrong")
    assert done.pairs_removed == 3 and _usable(platform) == 62
    with platform.sessions() as session:
        assert curation.reviews(session).total == 0  # a rejection settles the review
        events = session.execute(
            text(
                "SELECT actor, reason, model_version FROM audit_events "
                "WHERE action = 'pair.reject' ORDER BY target_id"
            )
        ).all()
        statuses = set(
            session.execute(
                text("SELECT status FROM pairs WHERE id = ANY(:ids)"), {"ids": worst}
            ).scalars()
        )
    assert statuses == {"rejected"}
    assert [(e.actor, e.reason) for e in events] == [("steward", "caption wrong")] * 3
    assert events[0].model_version == done.model_version
    assert all(r.pair_id not in worst for r in _mismatches(platform, limit=100).items)

    # The live model moved in the same transaction: a classification uses 62 anchors.
    image = sorted((shared_data / "cifar10" / "test" / "cat").iterdir())[0]
    with platform.sessions.begin() as session:
        [result] = classify.classify(
            session,
            live=platform.live,
            encoders=platform.encoders,
            images=[(image.name, image.read_bytes())],
            candidates=labelsets.check(CLASSES, "default"),
            options=classify.Options(k=K),
            client="test",
            channel="test",
            record=False,
        )
    assert result.usable_pairs == 62 and result.model_version == done.model_version

    with platform.sessions.begin() as session:
        back = curation.restore(session, pair_ids=worst, actor="steward", reason="was fine")
    assert back.pairs_returned == 3 and _usable(platform) == 65
    with platform.sessions.begin() as session, pytest.raises(Conflict):
        curation.restore(session, pair_ids=worst, actor="steward")


def test_pair_value_finds_the_harmful_pairs_and_the_what_if_is_a_dry_run(
    platform: Platform, shared_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "labelled"
    for name in ("cat", "truck", "airplane", "frog"):
        (folder / name).mkdir(parents=True)
        for image in sorted((shared_data / "cifar10" / "test" / name).iterdir())[:6]:
            (folder / name / image.name).write_bytes(image.read_bytes())
    before = _usable(platform)
    with platform.sessions() as session:
        report = curation.pair_values(
            session,
            live=platform.live,
            encoders=platform.encoders,
            labelled=evaluation.read_folder(folder, roots=[folder.parent]),
            options=Options(k=K),
            counts=(0, 3),
            top=5,
        )
    assert report.images_found_on == report.images_held_out == 12
    assert [row.excluded for row in report.what_if] == [0, 3][: len(report.what_if)]
    assert report.harmful and all(r.value < 0 for r in report.harmful)
    assert report.helpful and all(r.value > 0 for r in report.helpful)
    values = [r.value for r in report.harmful]
    assert values == sorted(values)
    assert _usable(platform) == before  # nothing left the live model
    with platform.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 0
