"""A trained latent operator as SILO calls it: frozen, with its input convention (silo.md §1.2)."""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from operators.base import Degradation
from operators.latent.readout import UNetFeatureReader, UNetFeatures

INPUT_KINDS = ("z0_hat", "unet_features")


class LearnedLatentOperator:
    """w_hat = H(input, sigma_pm1) with H frozen; `input_kind` says what the input is.

    "z0_hat": the Tweedie estimate of the current step (CNN variants). "unet_features": the
    up-block features of the eps call at z_t, captured inside `capture()` (readout variant),
    so SILO's gradient reaches z_t through the UNet's activations instead of through z0_hat.
    """

    def __init__(
        self,
        net: nn.Module,
        metadata: dict | None = None,
        unet: nn.Module | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        self.net = net.eval().requires_grad_(False)
        self.metadata = dict(metadata or {})
        self.input_kind: str = net.input_kind
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"unknown input kind {self.input_kind!r}; valid: {INPUT_KINDS}")
        if self.input_kind == "unet_features" and unet is None:
            raise ValueError("an operator on UNet features needs the prior's UNet to read them")
        self.reader = UNetFeatureReader(unet) if self.input_kind == "unet_features" else None
        self.mask = mask

    @property
    def needs_mask(self) -> bool:
        """True for networks conditioned on the inpainting mask."""
        return bool(getattr(self.net, "cond_mask", False))

    def bind(self, op: Degradation) -> LearnedLatentOperator:
        """This operator with op's per-sample mask when the network takes one, else itself."""
        if not self.needs_mask:
            return self
        mask = getattr(op, "mask", None)
        if mask is None:
            raise ValueError(
                f"this latent operator takes the inpainting mask; degradation {op.name!r} has "
                "none (seed it with op.seeded(generators) first)"
            )
        bound = copy.copy(self)  # shares the frozen network
        bound.mask = mask
        return bound

    def capture(self) -> AbstractContextManager[UNetFeatures | None]:
        """Hooks that record the UNet features of calls inside the block (readout only)."""
        return self.reader.capture() if self.reader is not None else nullcontext()

    def __call__(self, inp: torch.Tensor | UNetFeatures, sigma_pm1: float) -> torch.Tensor:
        """H(inp, sigma_pm1), returned in the dtype of the latents it is compared with."""
        param = next(self.net.parameters())
        mask = None if self.mask is None else self.mask.to(param.device)
        if isinstance(inp, UNetFeatures):
            return self.net(inp, sigma_pm1, mask).to(inp.maps[0].dtype)
        return self.net(inp.to(param.dtype), sigma_pm1, mask).to(inp.dtype)
