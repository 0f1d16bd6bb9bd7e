"""The readout-guidance operator H(UNet features of z_t, e_sigma) of SILO (silo.md §2.1).

Features are read with forward hooks on a diffusers UNet2DConditionModel, so any SD-1.x-shaped
UNet works: every ResnetBlock2D of `up_blocks`, in forward order, contributes the output of its
`conv2` (the residual branch before the shortcut add and the output scaling), and the
`time_embedding` output of the same call is kept as the timestep embedding `emb`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from operators.latent.embeddings import SigmaEmbedding, as_sigma


def up_block_resnets(unet: nn.Module) -> list[nn.Module]:
    """The UNet's up-block ResNet blocks in forward order (12 for SD-1.x)."""
    return [resnet for block in unet.up_blocks for resnet in block.resnets]


def feature_channels(unet: nn.Module) -> list[int]:
    """Channels of each read feature map (SD-1.5: 1280 x 3, 1280 x 3, 640 x 3, 320 x 3)."""
    return [resnet.conv2.out_channels for resnet in up_block_resnets(unet)]


@dataclass
class UNetFeatures:
    """What one UNet call exposed: the up-block feature maps and its timestep embedding."""

    maps: list[torch.Tensor] = field(default_factory=list)
    emb: torch.Tensor | None = None


class UNetFeatureReader:
    """Forward hooks that capture a UNet's up-block features during the calls inside capture()."""

    def __init__(self, unet: nn.Module) -> None:
        self.unet = unet
        self.resnets = up_block_resnets(unet)

    @contextmanager
    def capture(self) -> Iterator[UNetFeatures]:
        """Yield a UNetFeatures that the next UNet forward fills (each forward replaces it)."""
        features = UNetFeatures()

        def on_time_embedding(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            features.maps.clear()
            features.emb = out

        def on_conv2(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            features.maps.append(out)

        handles = [self.unet.time_embedding.register_forward_hook(on_time_embedding)]
        handles += [r.conv2.register_forward_hook(on_conv2) for r in self.resnets]
        try:
            yield features
        finally:
            for handle in handles:
                handle.remove()


def msra_fill(conv: nn.Conv2d) -> None:
    """Kaiming-normal (fan_out, ReLU gain) weights and zero bias (fvcore c2_msra_fill)."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck with GN(32), + ReLU(Linear(emb)), projected shortcut (§2.1)."""

    def __init__(self, cin: int, cout: int, bottleneck: int, emb_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, bottleneck, 1, bias=False)
        self.norm1 = nn.GroupNorm(32, bottleneck)
        self.emb = nn.Linear(emb_dim, bottleneck)
        self.conv2 = nn.Conv2d(bottleneck, bottleneck, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(32, bottleneck)
        self.conv3 = nn.Conv2d(bottleneck, cout, 1, bias=False)
        self.norm3 = nn.GroupNorm(32, cout)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.GroupNorm(32, cout))
        for conv in (self.conv1, self.conv2, self.conv3, self.shortcut[0]):
            msra_fill(conv)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        """ReLU(bottleneck(x) + shortcut(x)); emb (B, emb_dim) adds a per-channel bias if given."""
        h = F.relu(self.norm1(self.conv1(x)))
        if emb is not None:
            h = h + F.relu(self.emb(emb))[:, :, None, None]
        h = F.relu(self.norm2(self.conv2(h)))
        h = self.norm3(self.conv3(h))
        return F.relu(h + self.shortcut(x))


class ReadoutNetwork(nn.Module):
    """Per-layer bottlenecks on [feature_l | sigma map], softmax mixing, conv head (§2.1).

    The sigma map is LayerNorm(Linear(e_sigma) reshaped to 1 x h x w); it is one extra channel
    of every layer's input and of the head's input, next to an optional mask channel (random-box
    inpainting). Deviation from the official pipeline (silo.md §8, pitfalls 1 and 4): the
    bottlenecks receive `emb`, the UNet's own embedding of the timestep the features were
    computed at, in training and at sampling alike. `timestep_emb=False` drops it, as the
    official sampling does (operators imported from the official release are run that way).
    """

    input_kind = "unet_features"

    def __init__(
        self,
        channels: list[int],
        sigma_embedding: SigmaEmbedding,
        latent_size: tuple[int, int] = (64, 64),
        cond_mask: bool = False,
        projection_dim: int = 384,
        bottleneck_dim: int = 96,
        latent_channels: int = 4,
        timestep_emb: bool = True,
    ) -> None:
        super().__init__()
        self.timestep_emb = timestep_emb
        h, w = latent_size
        e = sigma_embedding.dim
        self.latent_size, self.cond_mask, self.sigma_embedding = (h, w), cond_mask, sigma_embedding
        self.sigma_linear = nn.Linear(e, h * w)
        self.sigma_norm = nn.LayerNorm([1, h, w])
        self.blocks = nn.ModuleList(
            [BottleneckBlock(c + 1, projection_dim, bottleneck_dim, e) for c in channels]
        )
        self.mixing = nn.Parameter(torch.ones(len(channels)))
        self.head = nn.Sequential(
            nn.Conv2d(projection_dim + 1 + int(cond_mask), 128, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(128, 32, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(32, latent_channels, 1),
        )

    def forward(
        self,
        features: UNetFeatures,
        sigma: float | torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """w_hat from one UNet call's features; mask (B, 1, H, W), 1 = known, when cond_mask."""
        if len(features.maps) != len(self.blocks):
            raise ValueError(
                f"readout operator: expected {len(self.blocks)} up-block feature maps, got "
                f"{len(features.maps)} (was the UNet called inside capture()?)"
            )
        if self.cond_mask != (mask is not None):
            need = "needs" if self.cond_mask else "takes no"
            raise ValueError(f"readout operator: this network {need} a mask input")
        dtype = self.sigma_linear.weight.dtype
        b, size = features.maps[0].shape[0], self.latent_size
        e = self.sigma_embedding(as_sigma(sigma, b, features.maps[0].device)).to(dtype)
        s = self.sigma_norm(self.sigma_linear(e).reshape(b, 1, *size))
        use_emb = self.timestep_emb and features.emb is not None
        emb = features.emb.to(dtype) if use_emb else None
        weights = torch.softmax(self.mixing, dim=0)
        mixed = 0.0
        for weight, block, fmap in zip(weights, self.blocks, features.maps, strict=True):
            f = F.interpolate(fmap.to(dtype), size=size, mode="bilinear", align_corners=False)
            mixed = mixed + weight * block(torch.cat([f, s], dim=1), emb)
        head_in = [mixed, s]
        if mask is not None:
            mask = mask.to(device=s.device, dtype=dtype)
            head_in.append(F.interpolate(mask, size=size, mode="area"))
        return self.head(torch.cat(head_in, dim=1))
