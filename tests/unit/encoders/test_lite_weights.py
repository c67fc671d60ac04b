"""The packaged EfficientNet-Lite0, Lite1 and Lite2 weights, mapped onto timm's models: every
tensor loads, and each shipped ImageNet classifier names the right class of real Tiny-ImageNet
images (a single mis-mapped tensor would wreck that)."""

from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config

from asifdb.encoders import efficientnet_lite

# One validation image of each of twelve classes, all named right by the Lite0 reference
# pipeline (64x64 images upscaled to 224: about a third of Tiny-ImageNet val is; a mis-mapped
# tensor leaves next to none).
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


TENSORS = {0: 296, 1: 386, 2: 386}


@pytest.fixture(scope="module", params=sorted(efficientnet_lite.VARIANTS), ids=lambda n: f"lite{n}")
def variant(request: pytest.FixtureRequest) -> efficientnet_lite.Variant:
    return efficientnet_lite.VARIANTS[request.param]


@pytest.fixture(scope="module")
def classifier(variant: efficientnet_lite.Variant) -> torch.nn.Module:
    model = timm.create_model(variant.architecture, pretrained=False)
    efficientnet_lite.load_packaged_weights(model, variant)
    return model.eval()


def test_every_tensor_comes_from_the_package(
    classifier: torch.nn.Module, variant: efficientnet_lite.Variant
) -> None:
    shipped = list(efficientnet_lite.packaged_state_dict(variant).values())
    loaded = list(classifier.state_dict().values())
    assert len(loaded) == len(shipped) == TENSORS[variant.number]
    assert all(torch.equal(a, b) for a, b in zip(loaded, shipped, strict=True))
    # timm's own configuration gives each variant its input size.
    assert resolve_data_config({}, model=classifier)["input_size"][1] == variant.size


def test_classifier_names_the_class_of_real_images(
    classifier: torch.nn.Module, variant: efficientnet_lite.Variant, val_dir: Path
) -> None:
    transform = create_transform(**resolve_data_config({}, model=classifier))
    wnids = ImageNetInfo().label_names()
    paths = [val_dir / f"{name}.JPEG" for name in GOLDEN]
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        top5 = [
            [wnids[i] for i in row] for row in classifier(batch).topk(5, dim=1).indices.tolist()
        ]
    truth = [p.parent.name for p in paths]
    first = sum(row[0] == wnid for row, wnid in zip(top5, truth, strict=True))
    within = sum(wnid in row for row, wnid in zip(top5, truth, strict=True))
    # The twelve were chosen as Lite0 names them right, so Lite0 must name (most of) them first;
    # Lite1 and Lite2, not chosen on them, must have them in their top five. On 300 random
    # Tiny-ImageNet val images (upscaled from 64 px) the three agree: top-1 30 / 27 / 25 %, top-5
    # 56 / 58 / 56 % (benchmarks/encoders/lite_variants.py); a mis-mapped tensor leaves
    # next to none.
    assert within >= 10, f"{within}/12 in the top five: {top5}"
    if variant.number == 0:
        # Most, not all: a borderline image may flip with a library's rounding.
        assert first >= 10, f"{first}/12 named right: {[row[0] for row in top5]}"
