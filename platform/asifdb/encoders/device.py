"""Which torch device an encoder runs on. Resolved when the model loads, never at construction
or import, so that a forked worker process is the first to touch CUDA."""

import torch

from asifdb.encoders.protocol import EncoderError


def check_device(device: str) -> None:
    """Reject a device string torch would not parse ("auto", "cpu", "cuda", "cuda:1" are fine)."""
    if device == "auto":
        return
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise EncoderError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from exc


def resolve_device(device: str) -> torch.device:
    """`auto` is CUDA when a GPU is visible, else CPU; an explicit CUDA device must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EncoderError(f"device {device!r} asked for, but no CUDA GPU is visible: use 'auto'")
    return resolved
