"""The default image encoder on real images: shape, dtype, norm, determinism, inputs as bytes or
PIL images, and the fast CPU runtime equal to the torch fp32 reference within float rounding."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asifdb.encoders import Encoder, get_encoder

# The fast runtime must give the reference's embeddings up to float rounding (measured: cosine
# 1 - 1e-7), so that every anchor lookup of ASIF is the same as with the reference.
MIN_COSINE = 0.99999


def test_embeddings_are_unit_float32_rows_of_1280(
    image_encoder: Encoder, jpegs: list[bytes]
) -> None:
    embeddings = image_encoder.embed_batch(jpegs[:40])
    assert embeddings.shape == (40, 1280)
    assert embeddings.dtype == np.float32
    assert np.all(np.isfinite(embeddings))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    # Different images, different embeddings (a constant output would pass the checks above).
    assert np.max(embeddings[0] @ embeddings[1:].T) < 0.95


def test_same_images_give_the_same_embeddings(image_encoder: Encoder, jpegs: list[bytes]) -> None:
    first = jpegs[:20]
    np.testing.assert_array_equal(
        image_encoder.embed_batch(first), image_encoder.embed_batch(first)
    )


def test_batch_size_does_not_change_embeddings(
    image_encoder: Encoder, encoder_cache: Path, jpegs: list[bytes]
) -> None:
    batch = jpegs[:12]
    one_by_one = get_encoder("tf_efficientnet_lite0", batch_size=1, cache_dir=encoder_cache)
    np.testing.assert_allclose(
        one_by_one.embed_batch(batch), image_encoder.embed_batch(batch), atol=1e-5
    )


def test_bytes_and_pil_images_embed_alike(image_encoder: Encoder, jpegs: list[bytes]) -> None:
    batch = jpegs[:8]
    images = [Image.open(io.BytesIO(jpeg)) for jpeg in batch]
    np.testing.assert_array_equal(
        image_encoder.embed_batch(images), image_encoder.embed_batch(batch)
    )


def test_grayscale_image_embeds_as_its_rgb_copy(image_encoder: Encoder, gray_jpeg: Path) -> None:
    rgb = Image.open(gray_jpeg).convert("RGB")
    np.testing.assert_array_equal(
        image_encoder.embed_batch([gray_jpeg.read_bytes()]), image_encoder.embed_batch([rgb])
    )


def test_no_images_give_an_empty_matrix(image_encoder: Encoder) -> None:
    assert image_encoder.embed_batch([]).shape == (0, 1280)


def test_fast_runtime_equals_the_torch_reference(
    image_encoder: Encoder, torch_image_encoder: Encoder, jpegs: list[bytes]
) -> None:
    batch = jpegs[:100]
    fast = image_encoder.embed_batch(batch)
    reference = torch_image_encoder.embed_batch(batch)
    assert np.min(np.sum(fast * reference, axis=1)) >= MIN_COSINE
    # ASIF looks up nearest anchors: the first 40 images as queries, the rest as anchors.
    np.testing.assert_array_equal(
        (fast[:40] @ fast[40:].T).argmax(axis=1),
        (reference[:40] @ reference[40:].T).argmax(axis=1),
    )


@pytest.mark.parametrize("runtime", ["openvino", "torch"])
def test_golden_embedding_of_a_real_image(
    runtime: str, image_encoder: Encoder, torch_image_encoder: Encoder, jpegs: list[bytes]
) -> None:
    # Pins the model, its weights and its preprocessing: a change of any shows up here.
    encoder = image_encoder if runtime == "openvino" else torch_image_encoder
    embedding = encoder.embed_batch(jpegs[:1])[0]
    np.testing.assert_allclose(embedding[GOLDEN_DIMS], GOLDEN_IMAGE_0, atol=2e-4)


def test_images_of_a_class_are_nearer_each_other(image_encoder: Encoder, val_dir: Path) -> None:
    classes = sorted(p for p in val_dir.iterdir())[::20]
    paths = [sorted(c.glob("*.JPEG"))[:4] for c in classes]
    embeddings = image_encoder.embed_batch([p.read_bytes() for group in paths for p in group])
    labels = np.repeat(np.arange(len(classes)), 4)
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    assert np.mean(labels[sims.argmax(axis=1)] == labels) >= 0.5


# The six largest coordinates of the first image of shard 00000 (most are 0 after ReLU6).
GOLDEN_DIMS = [54, 71, 462, 689, 829, 871]
GOLDEN_IMAGE_0 = np.array([0.146268, 0.145372, 0.152076, 0.195786, 0.213188, 0.163595])
