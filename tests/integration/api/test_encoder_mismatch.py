"""Queries refuse encoders other than the model's: after a real re-encode to other encoders, an
API (or `asifdb eval`) still configured with the old ones answers 409 and records nothing."""

from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from asifdb.errors import Conflict
from asifdb.services import evaluation, reencode
from asifdb.services.classify import Options
from asifdb.services.model import Encoders
from tests.integration.api.conftest import Api
from tests.samples import TEST_ROOTS, cifar_subset, ingest_now, tiny_shard

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Renamed:
    """A real encoder under another identity: what other encoders look like to the database
    (the only other encoders need the model hub, out of reach here)."""

    def __init__(self, encoder: object, name: str) -> None:
        self._encoder, self.name = encoder, name
        self.modality, self.dim = encoder.modality, encoder.dim

    def embed_batch(self, items: list) -> np.ndarray:
        return self._encoder.embed_batch(items)


@pytest.fixture
def seeded(api: Api, tmp_path: Path, shared_data: Path) -> Api:
    """40 Tiny-ImageNet pairs, embedded by the run's encoders."""
    ingest_now(api.platform, tiny_shard(shared_data, tmp_path / "wds", 40), "tiny")
    return api


def _reencode(api: Api, other: Encoders) -> None:
    """The real re-encode of every pair by `other`, to its switch (what the worker runs)."""
    platform = api.platform
    with platform.sessions.begin() as session:
        job = reencode.start(
            session,
            image_encoder=other.image.name,
            text_encoder=other.text.name,
            actor="test",
        )
        batches = reencode.BATCHES.pending(session, job.id)
    for batch in batches:
        reencode.process_batch(
            sessions=platform.sessions,
            blobs=platform.blobs,
            encoders_for=lambda image, text_: other,
            batch_id=batch,
        )
    with platform.sessions() as session:
        state = session.execute(text("SELECT image_encoder, text_encoder FROM model_state")).one()
    assert tuple(state) == (other.image.name, other.text.name)


def _queries(client: httpx.Client, image: Path) -> list[httpx.Response]:
    """One classification and a retrieval each way."""
    return [
        client.post(
            "/v1/classify",
            files=[("images", (image.name, image.read_bytes()))],
            data={"labels": CIFAR, "k": "20"},
        ),
        client.post(
            "/v1/retrieve",
            files=[("image", (image.name, image.read_bytes()))],
            data={"direction": "image_to_text", "k": "20"},
        ),
        client.post(
            "/v1/retrieve",
            data={"direction": "text_to_image", "text": "a photo of a ship.", "k": "20"},
        ),
    ]


def _predictions(api: Api) -> int:
    with api.platform.sessions() as session:
        return session.execute(text("SELECT count(*) FROM predictions")).scalar_one()


def test_queries_refuse_encoders_other_than_the_models(seeded: Api, shared_data: Path) -> None:
    image = sorted((shared_data / "cifar10" / "test" / "ship").iterdir())[0]
    old = seeded.platform.encoders
    new = Encoders(
        image=Renamed(old.image, "renamed/image"), text=Renamed(old.text, "renamed/text")
    )
    with seeded.client("app") as client:
        before = _queries(client, image)
        assert [r.status_code for r in before] == [200, 200, 200], [r.text for r in before]
        assert _predictions(seeded) == 3

        _reencode(seeded, new)
        refused = _queries(client, image)
        assert [r.status_code for r in refused] == [409, 409, 409], [r.text for r in refused]
        for response in refused:
            detail = response.json()["detail"]
            assert "renamed/image + renamed/text" in detail, detail
            assert f"{old.image.name} + {old.text.name}" in detail, detail
            assert "IMAGE_ENCODER" in detail and "restart" in detail, detail
        assert _predictions(seeded) == 3, "a refused query records nothing"

        # The API restarted with the model's encoders answers again.
        seeded.platform.__dict__["encoders"] = new
        after = _queries(client, image)
        assert [r.status_code for r in after] == [200, 200, 200], [r.text for r in after]
        assert _predictions(seeded) == 6


def test_eval_refuses_encoders_other_than_the_models(
    seeded: Api, shared_data: Path, tmp_path: Path
) -> None:
    old = seeded.platform.encoders
    folder = cifar_subset(shared_data, tmp_path / "cifar", "test", 1)
    new = Encoders(image=Renamed(old.image, "renamed/image"), text=old.text)
    _reencode(seeded, new)
    with pytest.raises(Conflict, match=f"renamed/image \\+ {old.text.name}"):
        evaluation.evaluate(
            roots=TEST_ROOTS,
            sessions=seeded.platform.sessions,
            live=seeded.platform.live,
            encoders=old,
            folder=folder,
            options=Options(k=20),
        )
    result = evaluation.evaluate(
        roots=TEST_ROOTS,
        sessions=seeded.platform.sessions,
        live=seeded.platform.live,
        encoders=new,
        folder=folder,
        options=Options(k=20),
    )
    assert result.images == len(CIFAR)


def test_an_empty_model_is_no_mismatch(api: Api, shared_data: Path) -> None:
    """Before the first pair the model has no encoders: the refusal is "no usable pairs"."""
    image = sorted((shared_data / "cifar10" / "test" / "ship").iterdir())[0]
    with api.client("app") as client:
        responses = _queries(client, image)
    assert [r.status_code for r in responses] == [409, 409, 409]
    assert all("no usable pairs" in r.json()["detail"] for r in responses)
