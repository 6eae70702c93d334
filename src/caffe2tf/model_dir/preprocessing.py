"""How raw photos become a converted net's input: one :class:`Preprocessing` for the whole
project (``conversion.json``, ``segment``, ``evaluate``, ``finetune``, ``serve``, ``detect``,
``export``).

The mean is stored ONCE, in the net's channel order (``mean``: BGR when ``bgr``, as Caffe
sees it and as ``conversion.json`` records it); :attr:`Preprocessing.mean_rgb` is the
same mean in the photo's RGB order. The net input is
``x = (image[..., ::-1] if bgr else image) - mean) * scale``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

__all__ = ["IMAGENET_MEAN_BGR", "PSPNET_PREPROCESSING", "Preprocessing"]

#: The ImageNet mean in BGR order: what Caffe image nets (PSPNet, SSD, ...) subtract, and
#: what a record without a mean stands for when photos are fed.
IMAGENET_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes network input.

    ``mean``: the mean per channel in the net's channel order (BGR when ``bgr``), ``None``
    when not recorded; ``scale`` multiplies after the mean subtraction; ``bgr``: the net
    takes BGR (the photo's channels are swapped first).
    """

    mean: tuple[float, ...] | None = None
    scale: float = 1.0
    bgr: bool = True

    def __post_init__(self) -> None:
        if self.mean is not None:
            object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))

    @classmethod
    def from_rgb(cls, mean_rgb: Sequence[float], *, scale: float = 1.0, bgr: bool = True) -> "Preprocessing":
        """The preprocessing whose mean is ``mean_rgb`` in RGB order."""
        mean = tuple(mean_rgb)
        return cls(mean=mean[::-1] if bgr else mean, scale=scale, bgr=bgr)

    @property
    def mean_rgb(self) -> tuple[float, ...] | None:
        """The mean in the photo's RGB order (``None`` when not recorded)."""
        if self.mean is None:
            return None
        return self.mean[::-1] if self.bgr else self.mean

    @property
    def mean_input_order(self) -> np.ndarray:
        """The mean in the net's channel order as ``float32`` (what is subtracted)."""
        if self.mean is None:
            raise ValueError("no mean recorded; use for_photos() to fill in the ImageNet mean")
        return np.asarray(self.mean, dtype=np.float32)

    def for_photos(self, default_mean_bgr: Sequence[float] = IMAGENET_MEAN_BGR) -> "Preprocessing":
        """This preprocessing ready for 3-channel photos: without a recorded mean, the ImageNet
        mean (given in BGR order, put into the net's order); ValueError unless 3 values."""
        if self.mean is None:
            default = tuple(default_mean_bgr)
            return replace(self, mean=default if self.bgr else default[::-1])
        if len(self.mean) != 3:
            raise ValueError(f"the recorded mean has {len(self.mean)} values; a photo has 3 channels")
        return self

    def with_overrides(self, *, mean: Sequence[float] | None = None, scale: float | None = None,
                       bgr: bool | None = None) -> "Preprocessing":
        """This preprocessing with the user's choices (``segment --mean/--scale/--bgr``); ``None``
        keeps the current value. ``mean`` is in the net's channel order of the result; a new
        ``bgr`` without a ``mean`` keeps the RGB mean (the photo colour that maps to 0)."""
        use_bgr = self.bgr if bgr is None else bool(bgr)
        use_scale = self.scale if scale is None else scale
        if mean is not None:
            return Preprocessing(mean=tuple(mean), scale=use_scale, bgr=use_bgr)
        if self.mean is None:
            return Preprocessing(mean=None, scale=use_scale, bgr=use_bgr)
        return Preprocessing.from_rgb(self.mean_rgb, scale=use_scale, bgr=use_bgr)

    def to_net_input(self, image_rgb: np.ndarray) -> np.ndarray:
        """``uint8/float [H, W, 3]`` RGB -> ``float32 [H, W, 3]`` network input.

        Works on a batch ``[N, H, W, 3]`` too. Mean-coloured pixels map to 0, which
        is why padding with the mean equals zero padding after preprocessing.
        """
        image = np.asarray(image_rgb)
        if image.shape[-1] != 3:
            raise ValueError(f"expected an RGB image [..., 3], received shape {image.shape}")
        x = image.astype(np.float32)
        if self.bgr:
            x = x[..., ::-1]
        x = (x - self.mean_input_order) * np.float32(self.scale)
        return np.ascontiguousarray(x, dtype=np.float32)

    # -- conversion.json ---------------------------------------------------------------------
    def to_json(self) -> dict:
        """The record's form: ``{"mean": [net order] | null, "scale": s, "bgr": b}``."""
        return {"mean": list(self.mean) if self.mean is not None else None, "scale": self.scale, "bgr": self.bgr}

    @classmethod
    def from_json(cls, data: dict | None) -> "Preprocessing":
        """Read the record's form (missing keys: no mean, scale 1, BGR; a zero/null scale is 1)."""
        data = data or {}
        mean = data.get("mean")
        return cls(mean=None if mean is None else tuple(mean), scale=float(data.get("scale", 1.0) or 1.0),
                   bgr=bool(data.get("bgr", True)))


#: PSPNet's published preprocessing (BGR, ImageNet mean, no scaling).
PSPNET_PREPROCESSING = Preprocessing(mean=IMAGENET_MEAN_BGR, scale=1.0, bgr=True)
