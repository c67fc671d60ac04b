"""The packaged EfficientNet-Lite0 weights, mapped onto timm's model: every tensor loads, and the
shipped ImageNet classifier names the right class of real Tiny-ImageNet images (a single
mis-mapped tensor would wreck that)."""

from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config

from asifdb.encoders import efficientnet_lite0

# One validation image of each of twelve classes, all named right by the reference pipeline
# (64x64 images upscaled to 224: about a third of Tiny-ImageNet val is; a mis-mapped tensor
# leaves next to none).
GOLDEN = {
    "n01443537/val_1230": "goldfish",
    "n01882714/val_1929": "koala",
    "n01910747/val_1053": "jellyfish",
    "n02056570/val_1809": "king penguin",
    "n02279972/val_1156": "monarch",
    "n02504458/val_187": "African elephant",
    "n04146614/val_1097": "school bus",
    "n04398044/val_1128": "teapot",
    "n04540053/val_1522": "volleyball",
    "n07749582/val_1487": "lemon",
    "n07753592/val_1110": "banana",
    "n07873807/val_1159": "pizza",
}


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    model = timm.create_model(efficientnet_lite0.ARCHITECTURE, pretrained=False)
    efficientnet_lite0.load_packaged_weights(model)
    return model.eval()


def test_every_tensor_comes_from_the_package(classifier: torch.nn.Module) -> None:
    shipped = list(efficientnet_lite0.packaged_state_dict().values())
    loaded = list(classifier.state_dict().values())
    assert len(loaded) == len(shipped) == 296
    assert all(torch.equal(a, b) for a, b in zip(loaded, shipped, strict=True))


def test_classifier_names_the_class_of_real_images(
    classifier: torch.nn.Module, val_dir: Path
) -> None:
    transform = create_transform(**resolve_data_config({}, model=classifier))
    wnids = ImageNetInfo().label_names()
    paths = [val_dir / f"{name}.JPEG" for name in GOLDEN]
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        top1 = [wnids[i] for i in classifier(batch).argmax(dim=1).tolist()]
    right = [wnid == p.parent.name for wnid, p in zip(top1, paths, strict=True)]
    # Most, not all: a borderline image may flip with a library's rounding.
    assert sum(right) >= 10, f"{sum(right)}/12 named right: {top1}"
