"""After a real re-encode to other encoders, classify and retrieve take the model's encoders from
the database (no restart; 503 naming them where this process cannot load them), while a caller
that brings its own encoders (`asifdb eval` through the service) gets 409 and records nothing."""

from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from asifdb.encoders import get_encoder
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


def test_queries_follow_a_switch_of_encoders_without_a_restart(
    seeded: Api, shared_data: Path
) -> None:
    image = sorted((shared_data / "cifar10" / "test" / "ship").iterdir())[0]
    old = seeded.platform.encoders
    unloadable = Encoders(
        image=Renamed(old.image, "renamed/image"), text=Renamed(old.text, "renamed/text")
    )
    with seeded.client("app") as client:
        before = _queries(client, image)
        assert [r.status_code for r in before] == [200, 200, 200], [r.text for r in before]
        assert _predictions(seeded) == 3

        # Encoders this process cannot load: 503 naming the encoder, nothing recorded (never
        # an answer from the old encoders' embeddings).
        _reencode(seeded, unloadable)
        refused = _queries(client, image)
        assert [r.status_code for r in refused] == [503, 503, 503], [r.text for r in refused]
        for response in refused:
            assert "renamed/image" in response.json()["detail"]
        assert _predictions(seeded) == 3, "a refused query records nothing"

        # A real other image encoder: the running API answers with it at once (no restart:
        # each query takes the model's encoders from the database) and records them.
        lite1 = Encoders(image=get_encoder("tf_efficientnet_lite1"), text=old.text)
        _reencode(seeded, lite1)
        after = _queries(client, image)
        assert [r.status_code for r in after] == [200, 200, 200], [r.text for r in after]
        assert _predictions(seeded) == 6
    with seeded.platform.sessions() as session:
        recorded = session.execute(
            text("SELECT DISTINCT image_encoder, model FROM predictions WHERE id > 3")
        ).all()
    assert [tuple(r) for r in recorded] == [(lite1.image.name, "default")]


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
