"""Train the embedded prior and export it in fp16 to bench/priors/embedded_weights/.

    python benchmarks/train_embedded.py --stage all      # vae, unet, export

Stages: `vae` (the KL autoencoder), then `unet` (epsilon UNet on the frozen encoder's latents),
then `export` (the fp16 files and training.json). `export-vae` writes only the VAE once the
unet stage has encoded its latents, so SILO's preserve operators can train beside the UNet.
DEFAULTS are the shipped run. Checkpoints (model, optimizer, step, RNG, elapsed time, losses)
are written atomically to --out every --ckpt-every steps; --resume continues from them. CPU
only; never run in CI.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from safetensors.torch import save_file

from bench.embedded_data import (
    HELDOUT_PHOTOS,
    TRAINING_PHOTOS,
    embedded_heldout_source,
    embedded_training_photos,
    random_crops,
)
from bench.priors.embedded import (
    IMAGE_SIZE,
    UNET_CONFIG,
    VAE_CONFIG,
    WEIGHTS_DIR,
    PromptEmbedding,
)
from bench.priors.schedule import SD_SCHEDULER_CONFIG

# The shipped run: each stage's cosine schedule spans `steps`; it stopped at `stop_at`.
DEFAULTS = {
    "vae": {"steps": 3000, "full_size_steps": 600, "stop_at": None, "batch": 32, "lr": 2e-3},
    "unet": {"steps": 2400, "stop_at": None, "batch": 32, "lr": 1e-3},
}
# The VAE (no attention) trains on 32 px windows of 64 px crops, then `full_size_steps` more
# on whole crops (batch / 4, the same pixels per step), lr from the schedule's floor linearly to
# 0: GroupNorm's statistics over a 32 px window are not those of the 64 px image the prior
# decodes; trained on windows alone, the VAE scored 26.9 dB on 32 px windows of the held-out
# crops but 23.9 dB on the crops themselves, 43% of that error in the image mean.
VAE_PATCH = 32
KL_WEIGHT = 1e-5  # on the per-element KL; reconstruction is L1 + MSE per pixel
VAE_POOL = 4096  # augmented crops drawn once for the VAE stage (32 px windows at random)
LATENT_CROPS = 6144  # augmented crops encoded once for the UNet stage
EMA_DECAY = 0.999


def log(msg: str) -> None:
    """Print a timestamped line, flushed (the run is polled through its log)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def atomic_save(obj: object, path: Path) -> None:
    """torch.save to a temporary file, then rename over `path`."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def lr_at(step: int, steps: int, lr: float, warmup: int = 100, tail: int = 0) -> float:
    """Linear warm-up, cosine decay to 10% of `lr` at `steps`, then linear to 0 over `tail`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if tail and step >= steps:
        return 0.1 * lr * max(0.0, 1 - (step - steps) / tail)
    p = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (0.1 + 0.45 * (1 + math.cos(math.pi * p)))


def vae_loss(vae: AutoencoderKL, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + MSE reconstruction of x (sampled latents) + KL_WEIGHT * mean KL per latent element."""
    dist = vae.encode(x).latent_dist
    rec = vae.decode(dist.sample()).sample
    l1, mse = (rec - x).abs().mean(), F.mse_loss(rec, x)
    kl = dist.kl().mean() / dist.mean[0].numel()
    return l1 + mse + KL_WEIGHT * kl, {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


def unet_loss(
    unet: UNet2DConditionModel,
    prompt: PromptEmbedding,
    scheduler: DDPMScheduler,
    z0: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """The SD epsilon-prediction loss at uniform t on scaled latents z0."""
    noise = torch.randn(z0.shape, generator=generator)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (z0.shape[0],), generator=generator)
    z_t = scheduler.add_noise(z0, noise, t)
    pred = unet(z_t, t, encoder_hidden_states=prompt(z0.shape[0])).sample
    return F.mse_loss(pred, noise)


@torch.no_grad()
def heldout_psnr(vae: AutoencoderKL, size: int = IMAGE_SIZE) -> float:
    """Mean PSNR (dB, on [0, 1]) of mode-encoded-decoded held-out crops."""
    source = embedded_heldout_source(size)
    x = torch.stack([source.load(i) for i in source.ids])
    was_training = vae.training
    vae.eval()
    rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    vae.train(was_training)
    mse = ((rec - x) / 2).pow(2).flatten(1).mean(1)
    return float((-10 * torch.log10(mse)).mean())


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1 - decay)


def rng_state(generator: torch.Generator) -> dict:
    """The RNG states to checkpoint."""
    return {"torch": torch.get_rng_state(), "data": generator.get_state()}


def train_vae(args: argparse.Namespace, out: Path) -> dict:
    """Stage 1: the KL autoencoder on random crops; stops at --steps or --target-psnr."""
    ckpt = out / "vae.pt"
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t = time.perf_counter()
    pool = random_crops(embedded_training_photos(), args.pool, IMAGE_SIZE, gen)
    log(f"vae: {len(pool)} training crops in {time.perf_counter() - t:.0f} s")
    vae = AutoencoderKL(**VAE_CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    step, elapsed, history = 0, 0.0, []
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
        torch.set_rng_state(state["rng"]["torch"])
        gen.set_state(state["rng"]["data"])
        log(f"vae: resumed at step {step}")
    params = sum(p.numel() for p in vae.parameters())
    log(f"vae: {params / 1e6:.2f} M params, lr {args.lr}")

    def save() -> None:
        state = {"model": vae.state_dict(), "optimizer": opt.state_dict(), "step": step}
        state |= {"elapsed": elapsed, "history": history, "rng": rng_state(gen)}
        atomic_save(state, ckpt)

    t0, psnr = time.perf_counter() - elapsed, float("nan")
    vae.train()
    last = args.stop_at or args.steps + args.full_size_steps
    while step < last:
        if step < args.steps:
            crops = pool[torch.randint(len(pool), (args.batch,), generator=gen)]
            i, j = torch.randint(IMAGE_SIZE - VAE_PATCH + 1, (2,), generator=gen).tolist()
            x = crops[:, :, i : i + VAE_PATCH, j : j + VAE_PATCH]
        else:
            x = pool[torch.randint(len(pool), (args.batch // 4,), generator=gen)]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, tail=args.full_size_steps)
        loss, parts = vae_loss(vae, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        elapsed = time.perf_counter() - t0
        if step % args.log_every == 0 or step == 1:
            history.append({"step": step, "time_s": round(elapsed, 1), **parts})
            log(f"vae step {step} loss {loss.item():.4f} {parts} {elapsed / step:.2f} s/step")
        if step % args.eval_every == 0 or step == last:
            psnr = heldout_psnr(vae)
            history.append({"step": step, "time_s": round(elapsed, 1), "heldout_psnr": psnr})
            log(f"vae step {step} held-out PSNR {psnr:.2f} dB")
        if step % args.ckpt_every == 0 or step == last:
            save()
        if psnr >= args.target_psnr or elapsed > args.max_minutes * 60:
            log(f"vae: stopping at step {step} (PSNR {psnr:.2f}, {elapsed / 60:.1f} min)")
            break
    save()
    vae.eval()
    psnr = heldout_psnr(vae)
    vae.save_pretrained(out / "vae_final")
    meta = {"steps": step, "time_s": round(elapsed, 1), "heldout_psnr": psnr, "params": params}
    meta |= {"batch": args.batch, "lr": args.lr, "lr_schedule_steps": args.steps}
    meta |= {"full_size_steps": args.full_size_steps, "final": history[-1] if history else None}
    (out / "vae_meta.json").write_text(json.dumps(meta, indent=2))
    log(f"vae: done, {step} steps, {elapsed / 60:.1f} min, held-out PSNR {psnr:.2f} dB")
    return meta


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, count: int, seed: int) -> dict[str, torch.Tensor]:
    """Posterior mean/std of `count` augmented training crops and the 1/std scaling factor."""
    gen = torch.Generator().manual_seed(seed + 1)
    photos = embedded_training_photos()
    means, stds = [], []
    for start in range(0, count, 256):
        x = random_crops(photos, min(256, count - start), IMAGE_SIZE, gen)
        dist = vae.encode(x).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    mean, std = torch.cat(means), torch.cat(stds)
    z = mean + std * torch.randn(mean.shape, generator=gen)
    return {"mean": mean, "std": std, "scaling_factor": torch.tensor(1.0 / z.std().item())}


def train_unet(args: argparse.Namespace, out: Path) -> dict:
    """Stage 2: the epsilon UNet (and its prompt embedding) on scaled latents, with EMA."""
    ckpt, lat_path = out / "unet.pt", out / "latents.pt"
    vae = AutoencoderKL.from_pretrained(out / "vae_final").eval()
    if lat_path.exists():
        lat = torch.load(lat_path)
    else:
        t = time.perf_counter()
        lat = encode_latents(vae, args.latent_crops, args.seed)
        atomic_save(lat, lat_path)
        log(f"unet: encoded {len(lat['mean'])} crops in {time.perf_counter() - t:.0f} s")
    sf = float(lat["scaling_factor"])
    log(f"unet: scaling factor {sf:.4f}")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 2)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    prompt = PromptEmbedding()
    model = torch.nn.ModuleDict({"unet": unet, "prompt": prompt})
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG)
    step, elapsed, history = 0, 0.0, []
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
        torch.set_rng_state(state["rng"]["torch"])
        gen.set_state(state["rng"]["data"])
        log(f"unet: resumed at step {step}")
    params = sum(p.numel() for p in model.parameters())
    log(f"unet: {params / 1e6:.2f} M params, batch {args.batch}, lr {args.lr}")

    def save() -> None:
        state = {"model": model.state_dict(), "ema": ema.state_dict()}
        state |= {
            "optimizer": opt.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "history": history,
            "rng": rng_state(gen),
        }
        atomic_save(state, ckpt)

    t0, window = time.perf_counter() - elapsed, []
    model.train()
    n = len(lat["mean"])
    last = args.stop_at or args.steps
    while step < last:
        idx = torch.randint(n, (args.batch,), generator=gen)
        eps = torch.randn(lat["mean"][idx].shape, generator=gen)
        z0 = (lat["mean"][idx] + lat["std"][idx] * eps) * sf
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        loss = unet_loss(unet, prompt, scheduler, z0, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(ema, model, min(EMA_DECAY, (1 + step) / (10 + step)))
        step += 1
        elapsed = time.perf_counter() - t0
        window.append(loss.item())
        if step % args.log_every == 0 or step == 1:
            mean_loss = sum(window) / len(window)
            window = []
            history.append({"step": step, "time_s": round(elapsed, 1), "loss": mean_loss})
            log(f"unet step {step} loss {mean_loss:.4f} {elapsed / step:.2f} s/step")
        if step % args.ckpt_every == 0 or step == last:
            save()
        if elapsed > args.max_minutes * 60:
            log(f"unet: stopping at step {step} ({elapsed / 60:.1f} min)")
            break
    save()
    meta = {"steps": step, "time_s": round(elapsed, 1), "params": params, "batch": args.batch}
    meta |= {"lr": args.lr, "scaling_factor": sf, "latent_crops": n, "ema_decay": EMA_DECAY}
    meta |= {"final_loss": history[-1]["loss"] if history else None}
    (out / "unet_meta.json").write_text(json.dumps(meta, indent=2))
    log(f"unet: done, {step} steps, {elapsed / 60:.1f} min")
    return meta


def export_vae(out: Path, dest: Path) -> None:
    """Write the fp16 vae/ with the scaling factor of the latents the `unet` stage encoded."""
    vae = AutoencoderKL.from_pretrained(out / "vae_final")
    lat = torch.load(out / "latents.pt")
    vae.register_to_config(scaling_factor=float(lat["scaling_factor"]))
    dest.mkdir(parents=True, exist_ok=True)
    vae.half().save_pretrained(dest / "vae")
    log(f"exported the VAE to {dest / 'vae'} (scaling factor {float(lat['scaling_factor']):.4f})")


def export(out: Path, dest: Path, seed: int) -> None:
    """Write fp16 vae/, unet/, prompt_embedding.safetensors, scheduler/ and training.json."""
    export_vae(out, dest)
    state = torch.load(out / "unet.pt", weights_only=False)
    unet, prompt = UNet2DConditionModel(**UNET_CONFIG), PromptEmbedding()
    model = torch.nn.ModuleDict({"unet": unet, "prompt": prompt})
    model.load_state_dict(state["ema"])
    unet.half().save_pretrained(dest / "unet")
    save_file(
        {"embedding": prompt.embedding.detach().half().contiguous()},
        dest / "prompt_embedding.safetensors",
    )
    DDPMScheduler.from_config(SD_SCHEDULER_CONFIG).save_pretrained(dest / "scheduler")
    vae_meta = json.loads((out / "vae_meta.json").read_text())
    unet_meta = json.loads((out / "unet_meta.json").read_text())
    vae32 = AutoencoderKL.from_pretrained(dest / "vae", torch_dtype=torch.float32).eval()
    meta = {
        "recipe": "python benchmarks/train_embedded.py --stage all",
        "seed": seed,
        "image_size": IMAGE_SIZE,
        "training_photos": list(TRAINING_PHOTOS),
        "heldout_photos": list(HELDOUT_PHOTOS),
        "vae": vae_meta,
        "unet": unet_meta,
        "heldout_vae_psnr_fp16": heldout_psnr(vae32),
        "machine": f"{platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}",
        "torch": torch.__version__,
    }
    (dest / "training.json").write_text(json.dumps(meta, indent=2))
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    psnr = meta["heldout_vae_psnr_fp16"]
    log(f"exported to {dest}: {size / 2**20:.2f} MiB, held-out VAE PSNR (fp16) {psnr:.2f} dB")


def main() -> None:
    """Parse the recipe's arguments and run the requested stage(s)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--stage",
        choices=["vae", "unet", "all", "export-vae", "export"],
        default="all",
        help="export-vae: only the VAE, once the unet stage has encoded its latents",
    )
    ap.add_argument("--steps", type=int, help="length of the stage's lr schedule (see DEFAULTS)")
    ap.add_argument(
        "--full-size-steps",
        type=int,
        help="VAE: steps on whole crops after the --steps on 32 px windows (see DEFAULTS)",
    )
    ap.add_argument("--stop-at", type=int, help="stop the stage at this step (default: the end)")
    ap.add_argument("--batch", type=int, help="batch size (see DEFAULTS)")
    ap.add_argument("--lr", type=float, help="peak learning rate (see DEFAULTS)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/embedded"), help="checkpoint folder")
    ap.add_argument("--dest", type=Path, default=WEIGHTS_DIR, help="export folder")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument(
        "--target-psnr",
        type=float,
        default=float("inf"),
        help="stop the VAE stage once the held-out PSNR reaches this",
    )
    ap.add_argument("--max-minutes", type=float, default=float("inf"), help="per stage")
    ap.add_argument("--pool", type=int, default=VAE_POOL, help="VAE training crops, drawn once")
    ap.add_argument("--latent-crops", type=int, default=LATENT_CROPS)
    ap.add_argument("--threads", type=int, default=1, help="1 beats 2 on shared cores")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    stages = ["vae", "unet"] if args.stage == "all" else [args.stage]
    if args.stage == "export-vae":
        export_vae(args.out, args.dest)
        return
    for stage in stages:
        if stage == "export":
            continue
        stage_args = copy.copy(args)
        for key, value in DEFAULTS[stage].items():
            if getattr(args, key) is None:
                setattr(stage_args, key, value)
        if stage == "unet":
            train_unet(stage_args, args.out)
        else:
            train_vae(stage_args, args.out)
    if args.stage in ("all", "export"):
        export(args.out, args.dest, args.seed)


if __name__ == "__main__":
    main()
