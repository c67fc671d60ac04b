"""EfficientNet-Lite0/1/2 from their packages, checked the same way: ImageNet top-1 and top-5 of
each shipped classifier on the same random Tiny-ImageNet validation images (64 px, upscaled to
each variant's input size by timm's own configuration). A mis-mapped tensor leaves next to
nothing right; three variants loaded correctly agree within a few points. Run:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoders/lite_variants.py --images 300
"""

import argparse
import random
from pathlib import Path

import timm
import torch
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config

from asifdb.encoders import efficientnet_lite

VAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "tiny-imagenet" / "val"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = sorted(VAL.glob("*/*.JPEG"))
    random.Random(args.seed).shuffle(paths)
    paths = paths[: args.images]
    wnids = ImageNetInfo().label_names()
    for variant in efficientnet_lite.VARIANTS.values():
        model = timm.create_model(variant.architecture, pretrained=False)
        efficientnet_lite.load_packaged_weights(model, variant)
        model.eval()
        transform = create_transform(**resolve_data_config({}, model=model))
        batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
        with torch.inference_mode():
            top5 = model(batch).topk(5, dim=1).indices.tolist()
        first = sum(wnids[row[0]] == p.parent.name for row, p in zip(top5, paths, strict=True))
        within = sum(
            p.parent.name in {wnids[i] for i in row} for row, p in zip(top5, paths, strict=True)
        )
        print(
            f"{variant.architecture} ({variant.size} px): top-1 {100 * first / len(paths):.1f} %, "
            f"top-5 {100 * within / len(paths):.1f} % of {len(paths)} images"
        )


if __name__ == "__main__":
    main()
