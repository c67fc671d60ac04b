"""Classification over real HTTP: evidence, provenance in SQL, and revocation at once."""

from pathlib import Path

import pytest
from sqlalchemy import text

from asifdb.anchors import ann_index
from asifdb.db.session import make_engine
from tests.conftest import setup_url
from tests.integration.api.conftest import Api
from tests.samples import cifar_subset, ingest_now, tiny_shard

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _ingest(api: Api, source: Path, licence: str, **options: object) -> None:
    ingest_now(api.platform, source, licence, batch_size=128, **options)


@pytest.fixture
def seeded(api: Api, tmp_path: Path, shared_data: Path) -> Api:
    """300 Tiny-ImageNet pairs (licence tiny) and 100 CIFAR-10 train pairs (licence cifar)."""
    _ingest(api, tiny_shard(shared_data, tmp_path / "wds", 300), "tiny")
    cifar = cifar_subset(shared_data, tmp_path / "cifar", "train", 10)
    _ingest(api, cifar, "cifar", template="a photo of a {}.")
    return api


def _classify(client, image: Path, **form: object):  # noqa: ANN001, ANN202
    data = {"labels": CIFAR, "k": "50", **form}
    return client.post(
        "/v1/classify", files=[("images", (image.name, image.read_bytes()))], data=data
    )


def _licences_of(api: Api, prediction_id: int) -> set[str]:
    query = "SELECT DISTINCT license_name FROM prediction_provenance WHERE prediction_id = :p"
    with api.platform.sessions() as session:
        return set(session.execute(text(query), {"p": prediction_id}).scalars())


def test_classify_explains_and_revocation_takes_effect_at_once(
    seeded: Api, shared_data: Path
) -> None:
    image = sorted((shared_data / "cifar10" / "test" / "ship").iterdir())[0]
    with seeded.client("app") as app_client:
        before = _classify(app_client, image)
    assert before.status_code == 200, before.text
    [result] = before.json()
    assert set(result["scores"]) == set(CIFAR)
    assert result["label"] == max(result["scores"], key=result["scores"].get)
    evidence = result["evidence"]
    assert evidence and {
        "pair_id",
        "caption",
        "image_similarity",
        "caption_similarity",
        "contribution",
    } <= set(evidence[0])
    assert "cifar" in {e["license"] for e in evidence}

    with seeded.platform.sessions() as session:
        total = session.execute(
            text("SELECT sum(contribution) FROM prediction_evidence WHERE prediction_id = :p"),
            {"p": result["prediction_id"]},
        ).scalar_one()
    assert total == pytest.approx(result["score"], rel=1e-4), "contributions sum to the score"
    assert "cifar" in _licences_of(seeded, result["prediction_id"])

    with seeded.client("steward") as steward:
        cifar_id = next(r["id"] for r in steward.get("/v1/licenses").json() if r["name"] == "cifar")
        revoked = steward.post(f"/v1/licenses/{cifar_id}/revoke", json={"reason": "expired"})
        assert revoked.status_code == 200 and revoked.json()["pairs_removed"] == 100

    with seeded.client("app") as app_client:
        [after] = _classify(app_client, image).json()
    assert after["model_version"] > result["model_version"]
    assert after["usable_pairs"] == result["usable_pairs"] - 100
    assert "cifar" not in {e["license"] for e in after["evidence"]}
    assert _licences_of(seeded, after["prediction_id"]) == {"tiny"}


def test_bad_classify_requests_are_clear_4xx(seeded: Api, shared_data: Path) -> None:
    image = sorted((shared_data / "cifar10" / "test" / "cat").iterdir())[0]
    with seeded.client("app") as client:
        empty = client.post(
            "/v1/classify", files=[("images", ("a.png", image.read_bytes()))], data={"labels": []}
        )
        assert empty.status_code == 422
        one = _classify(client, image, labels=["cat"])
        assert one.status_code == 422 and "two" in one.json()["detail"]
        corrupt = client.post(
            "/v1/classify", files=[("images", ("x.jpg", b"not an image"))], data={"labels": CIFAR}
        )
        assert corrupt.status_code == 422 and "x.jpg" in corrupt.json()["detail"]
        bad_k = _classify(client, image, k="0")
        assert bad_k.status_code == 422
        unknown = _classify(client, image, templates="nonsense")
        assert unknown.status_code == 422 and "template set" in unknown.json()["detail"]
    with seeded.client("auditor") as auditor:
        assert _classify(auditor, image).status_code == 403
    with seeded.platform.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 0


def test_impact_report_reruns_what_the_licence_carried(seeded: Api, shared_data: Path) -> None:
    images = [sorted((shared_data / "cifar10" / "test" / c).iterdir())[0] for c in CIFAR[:4]]
    with seeded.client("app") as app_client:
        made = [_classify(app_client, image).json()[0] for image in images]
    with seeded.client("steward") as steward:
        cifar_id = next(r["id"] for r in steward.get("/v1/licenses").json() if r["name"] == "cifar")
        report = steward.get(f"/v1/licenses/{cifar_id}/impact", params={"sample": 10})
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["pairs"] == 100 and body["usable_pairs"] == 100
    assert body["predictions_influenced"] == len(made)
    assert body["sample_size"] == len(made)
    for row in body["sample"]:
        assert row["rerun"] is not None and row["changed"] == (
            row["rerun"]["label"] != row["label_then"]
        )
    # The dry run recorded nothing and changed nothing.
    with seeded.platform.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM predictions")).scalar_one() == len(made)
        assert (
            session.execute(
                text("SELECT count(*) FROM usable_pairs WHERE license_id = :l"), {"l": cifar_id}
            ).scalar_one()
            == 100
        )

    with seeded.client("auditor") as auditor:
        one = auditor.get(f"/v1/predictions/{made[0]['prediction_id']}").json()
        assert one["predicted_label"] == made[0]["label"]
        assert one["evidence"][0]["pair_id"] == made[0]["evidence"][0]["pair_id"]
        assert one["model"]["k"] == 50
    with seeded.client("app") as app_client:
        assert app_client.get(f"/v1/licenses/{cifar_id}/impact").status_code == 403


def test_retrieve_both_ways(seeded: Api, shared_data: Path) -> None:
    image = sorted((shared_data / "cifar10" / "test" / "ship").iterdir())[0]
    with seeded.client("app") as client:
        given = client.post(
            "/v1/retrieve",
            data={
                "direction": "image_to_text",
                "k": "50",
                "candidate_texts": ["a photo of a ship.", "a photo of a cat.", "my mug"],
            },
            files=[("image", (image.name, image.read_bytes()))],
        )
        assert given.status_code == 200, given.text
        hits = given.json()["hits"]
        assert [h["rank"] for h in hits] == [1, 2, 3]
        assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]

        collection = client.post(
            "/v1/retrieve",
            data={
                "direction": "text_to_image",
                "text": "a photo of a ship.",
                "top": "5",
                "k": "50",
            },
        )
        assert collection.status_code == 200, collection.text
        found = collection.json()["hits"]
        assert len(found) == 5 and all(h["pair_id"] for h in found)
        missing = client.post("/v1/retrieve", data={"direction": "text_to_image"})
        assert missing.status_code == 422


def test_the_ann_path_agrees_with_the_exact_path(seeded: Api, shared_data: Path) -> None:
    images = [sorted((shared_data / "cifar10" / "test" / c).iterdir())[1] for c in CIFAR]
    with seeded.client("app") as client:
        # No index yet: a clear conflict naming the command, and nothing recorded.
        refused = _classify(client, images[0], method="ann")
        assert refused.status_code == 409 and "asifdb ann build" in refused.json()["detail"]
        setup = make_engine(setup_url(seeded.platform.url))  # an index is schema work
        ann_index.build(setup)
        setup.dispose()
        for image in images:
            [exact] = _classify(client, image, method="exact").json()
            [ann] = _classify(client, image, method="ann").json()
            assert ann["label"] == exact["label"]
            assert ann["score"] == pytest.approx(exact["score"], rel=1e-2)
    with seeded.platform.sessions() as session:
        methods = session.execute(
            text("SELECT topk_method, count(*) FROM predictions GROUP BY 1")
        ).all()
    assert dict(methods) == {"exact": len(images), "ann": len(images)}


def test_the_ivf_path_agrees_with_the_exact_path_and_is_recorded(
    seeded: Api, shared_data: Path
) -> None:
    """method=ivf over the real database: the exact path's labels and close scores, recorded
    as 'ivf'; a revoked licence's pairs leave it at the next query, with no rebuild asked for."""
    images = [sorted((shared_data / "cifar10" / "test" / c).iterdir())[2] for c in CIFAR[:4]]
    with seeded.client("app") as client:
        for image in images:
            [exact] = _classify(client, image, method="exact").json()
            [ivf] = _classify(client, image, method="ivf").json()
            assert (ivf["label"], ivf["method"]) == (exact["label"], "ivf")
            # Which neighbours may differ (the shortlist is 4 k by 3-bit PQ codes at this
            # size), their similarities may not: the exact path's rerank, bit for bit.
            exact_sims = {e["pair_id"]: e["image_similarity"] for e in exact["evidence"]}
            shared = [e for e in ivf["evidence"] if e["pair_id"] in exact_sims]
            assert shared
            assert all(e["image_similarity"] == exact_sims[e["pair_id"]] for e in shared)
        [before] = _classify(client, images[0], method="ivf").json()
    assert "cifar" in {e["license"] for e in before["evidence"]}
    with seeded.client("steward") as steward:
        cifar_id = next(r["id"] for r in steward.get("/v1/licenses").json() if r["name"] == "cifar")
        revoked = steward.post(f"/v1/licenses/{cifar_id}/revoke", json={"reason": "expired"})
        assert revoked.status_code == 200 and revoked.json()["pairs_removed"] == 100
    with seeded.client("app") as client:
        [after] = _classify(client, images[0], method="ivf").json()
    assert after["method"] == "ivf" and after["usable_pairs"] == before["usable_pairs"] - 100
    assert "cifar" not in {e["license"] for e in after["evidence"]}
    assert "cifar" not in _licences_of(seeded, after["prediction_id"])
    with seeded.platform.sessions() as session:
        methods = session.execute(
            text("SELECT topk_method, count(*) FROM predictions GROUP BY 1")
        ).all()
    assert dict(methods) == {"exact": len(images), "ivf": len(images) + 2}
