"""Help texts of `bench train-operator` options (light: `bench --help` imports it)."""

TRAIN_OPERATOR_HELP: dict[str, str] = {
    "prior": "prior name, alias (sd15, rv51), Hugging Face id or diffusers folder",
    "deg": "degradation spec, e.g. 'sr4' or 'blur:sigma=3,size=61' (see `bench list`)",
    "data": "training images: a folder (searched recursively), hf:NAME[:SPLIT][:COLUMN] or a "
    "save_to_disk folder (default: the gaussian oracle's own samples)",
    "steps": "total optimizer steps (a resumed run continues up to this number)",
    "batch": "images per step",
    "lr": "learning rate (default: 1e-4 Adam for the CNNs, 2e-4 AdamW for readout)",
    "out": "checkpoint file (default: the user cache, named by prior, degradation, variant)",
    "variant": "network: preserve (default, silo.md §2.3), noise-cnn (§2.2), readout (§2.1)",
    "sigma_max": "sigma ~ U(0, sigma_max) per batch, [-1,1] scale (default 0.04; readout 0.1)",
    "loss": "l1 (the paper's) or mse",
    "seed": "seed of weights, batches, noise, augmentations (same seed -> same weights)",
    "val_fraction": "share of --data images held out for validation (the first ones)",
    "checkpoint_every": "save and validate every N steps (0: only at the end)",
    "resume": "checkpoint to continue from (restores weights, optimizer, RNG and step)",
    "device": "torch device",
    "widths": "preserve CNN base,middle channels (default 48,128, the reference's)",
}
