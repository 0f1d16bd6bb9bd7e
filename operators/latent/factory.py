"""The three variants of SILO's latent operator: defaults, architecture records, construction."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bench.priors.base import Prior
from operators.base import Degradation
from operators.latent.embeddings import sinusoidal_sigma_embedding, unet_sigma_embedding
from operators.latent.noise_cnn import NoiseCNN
from operators.latent.preserve_cnn import PreserveCNN
from operators.latent.readout import ReadoutNetwork, feature_channels

PRESERVE_WIDTHS = (48, 128)  # the reference's base / middle channels (silo.md §2.3)
SINUSOIDAL_DIM = 320  # SD-1.x time_proj width, for priors without a UNet
MASKED_DEGRADATIONS = ("inpaint-random",)  # a fresh box per image: the mask is an input


@dataclass(frozen=True)
class Variant:
    """Training defaults of one network variant (silo.md §3)."""

    name: str
    input_kind: str  # "z0_hat" (H(z0_hat)) or "unet_features" (H(UNet features of z_t))
    sigma_max: float  # sigma ~ U(0, sigma_max) per batch, [-1, 1] scale
    lr: float
    optimizer: str  # "adam" or "adamw" (weight decay 0)
    description: str


VARIANTS: dict[str, Variant] = {
    "preserve": Variant(
        "preserve", "z0_hat", 0.04, 1e-4, "adam", "UNet-independent CNN (silo.md §2.3), default"
    ),
    "noise-cnn": Variant(
        "noise-cnn", "z0_hat", 0.04, 1e-4, "adam", "noise-conditioned CNN (silo.md §2.2)"
    ),
    "readout": Variant(
        "readout", "unet_features", 0.1, 2e-4, "adamw", "UNet readout aggregation (silo.md §2.1)"
    ),
}


def get_variant(name: str) -> Variant:
    """The variant called name, or a ValueError listing the valid names."""
    if name not in VARIANTS:
        raise ValueError(f"unknown operator variant {name!r}; valid: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def prior_unet(prior: Prior) -> nn.Module | None:
    """The prior's diffusion UNet, or None (the gaussian oracle has none)."""
    return prior.modules().get("unet")


def network_architecture(
    variant: str, prior: Prior, op: Degradation, widths: tuple[int, int] | None = None
) -> dict:
    """The JSON-able constructor record of the variant's network for (prior, op).

    `widths` (base, middle channels) applies to the preserve CNN only; default the reference's.
    """
    get_variant(variant)
    if widths is not None and variant != "preserve":
        raise ValueError(f"widths apply to the preserve variant only, not {variant!r}")
    c, h, w = prior.latent_shape
    unet = prior_unet(prior)
    masked = op.name in MASKED_DEGRADATIONS
    if masked and variant != "readout":
        raise ValueError(
            f"degradation {op.name!r} draws a new box per image and only the readout variant "
            "takes the mask as an input; use --variant readout"
        )
    if variant == "preserve":
        base, mid = widths or PRESERVE_WIDTHS
        if base < 8 or mid < 8:
            raise ValueError(f"preserve widths must be >= 8 channels, got {base},{mid}")
        return {
            "variant": variant,
            "latent_channels": c,
            "base_channels": base,
            "mid_channels": mid,
        }
    sigma = (
        {"sigma_embedding": "unet", "emb_dim": unet.time_embedding.linear_2.out_features}
        if unet is not None
        else {"sigma_embedding": "sinusoidal", "emb_dim": SINUSOIDAL_DIM}
    )
    if variant == "noise-cnn":
        return {"variant": variant, "latent_shape": [c, h, w], **sigma}
    if unet is None:
        raise ValueError(
            f"the readout variant reads UNet features, and prior {prior.name!r} has no UNet; "
            "use --variant preserve or noise-cnn"
        )
    return {
        "variant": variant,
        "channels": feature_channels(unet),
        "latent_size": [h, w],
        "latent_channels": c,
        "cond_mask": masked,
        **sigma,
    }


def build_network(arch: dict, prior: Prior) -> nn.Module:
    """The network an architecture record describes, its sigma embedding bound to the prior."""
    variant = arch["variant"]
    if variant == "preserve":
        base, mid = (
            arch.get("base_channels", PRESERVE_WIDTHS[0]),
            arch.get("mid_channels", PRESERVE_WIDTHS[1]),
        )
        return PreserveCNN(arch["latent_channels"], base_channels=base, mid_channels=mid)
    unet = prior_unet(prior)
    if arch["sigma_embedding"] == "unet":
        if unet is None:
            raise ValueError(f"this {variant} operator needs a UNet; prior {prior.name!r} has none")
        embedding = unet_sigma_embedding(unet)
        if embedding.dim != arch["emb_dim"]:
            raise ValueError(
                f"operator expects a {arch['emb_dim']}-d UNet time embedding, prior "
                f"{prior.name!r} has {embedding.dim}"
            )
    else:
        embedding = sinusoidal_sigma_embedding(arch["emb_dim"])
    if variant == "noise-cnn":
        return NoiseCNN(embedding, tuple(arch["latent_shape"]))
    if variant != "readout":
        raise ValueError(f"unknown operator variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if unet is None or feature_channels(unet) != arch["channels"]:
        raise ValueError(
            f"readout operator was built for UNet up-block channels {arch['channels']}; prior "
            f"{prior.name!r} has {None if unet is None else feature_channels(unet)}"
        )
    return ReadoutNetwork(
        arch["channels"],
        embedding,
        tuple(arch["latent_size"]),
        cond_mask=arch["cond_mask"],
        latent_channels=arch["latent_channels"],
        timestep_emb=arch.get("timestep_emb", True),
    )


def parameter_count(net: nn.Module) -> int:
    """Number of trainable parameters (the frozen UNet embedding is not part of the network)."""
    return sum(p.numel() for p in net.parameters())
