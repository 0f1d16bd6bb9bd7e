"""The `bench` command line: list the registries, run a sweep."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bench.data import folder_images, prior_samples, select_ids
from bench.execute import run_cells
from bench.priors import PRIOR_DESCRIPTIONS, load_prior
from bench.store import existing_status, write_per_image_csv
from bench.sweep import Cell, canonical_spec, coerce_like, parse_solver_overrides, plan_cells
from operators import build_degradation, list_degradations
from solvers import SOLVERS, get_solver

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
ORACLE_SAMPLES = 1000


def split_specs(text: str) -> list[str]:
    """'blur:sigma=2,size=31,sr4' -> ['blur:sigma=2,size=31', 'sr4'] (params stay with their op)."""
    specs: list[str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if "=" in token and ":" not in token and specs:
            specs[-1] += "," + token
        else:
            specs.append(token)
    return specs


def resolve_solvers(
    names: list[str], degradations: list[str], steps: int | None, overrides: dict
) -> dict[str, dict[str, dict]]:
    """{solver: {degradation spec: hyperparameters}} with --steps and --set applied by type."""
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"--set names solver(s) not in --solvers: {', '.join(unknown)}")
    resolved: dict[str, dict[str, dict]] = {}
    for name in names:
        spec = get_solver(name)
        resolved[name] = {}
        for deg in degradations:
            base = spec.hparams(deg.split(":")[0])
            given = {k: coerce_like(v, base.get(k, v)) for k, v in overrides.get(name, {}).items()}
            if steps is not None and "steps" in base:
                given.setdefault("steps", steps)
            resolved[name][deg] = spec.hparams(deg.split(":")[0], given)
    return resolved


@app.command("list")
def list_all() -> None:
    """Print the solvers, degradations and priors the tool knows."""
    out = Console()
    solvers = Table("solver", "default hyperparameters", "per-degradation", "what it is")
    for name, spec in sorted(SOLVERS.items()):
        per_task = "; ".join(f"{d}: {json.dumps(h)}" for d, h in spec.task_defaults.items())
        solvers.add_row(name, json.dumps(spec.defaults), per_task or "-", spec.description)
    degradations = Table("degradation", "default parameters", "what it is")
    for name, params, description in list_degradations():
        degradations.add_row(name, json.dumps(params), description)
    priors = Table("prior", "what it is")
    for name, description in PRIOR_DESCRIPTIONS.items():
        priors.add_row(name, description)
    for table in (solvers, degradations, priors):
        out.print(table)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@app.command()
def run(
    solvers: str = typer.Option(..., help="comma-separated solver names (see `bench list`)"),
    deg: str = typer.Option("inpaint", help="degradation specs, e.g. 'sr4,blur:sigma=2,size=31'"),
    prior: str = typer.Option("gaussian", help="prior name, alias (sd15, rv51), HF id or folder"),
    data: str | None = typer.Option(None, help="folder of images (default: the prior's samples)"),
    images: str | None = typer.Option(None, help="N (first N), a:b, or ids (default: 8 / all)"),
    sigma: str = typer.Option("0.01", help="noise std on the [0,1] scale, comma-separated"),
    seeds: str = typer.Option("0", help="comma-separated seeds"),
    steps: int | None = typer.Option(None, help="diffusion steps for every solver that has them"),
    set_: list[str] = typer.Option([], "--set", help="solver overrides, e.g. ldps.zeta=2"),
    batch: int = typer.Option(1, min=1, help="images per solve"),
    prompt: str = typer.Option("", help="text prompt for diffusers priors"),
    device: str = typer.Option("cpu", help="torch device"),
    out: Path = typer.Option(Path("runs/latest"), help="output folder (records, per_image.csv)"),
    force: bool = typer.Option(False, help="recompute cells that already have a record"),
    retry_failed: bool = typer.Option(False, help="recompute cells whose record is a failure"),
) -> None:
    """Sweep solvers x degradations x sigmas x seeds x images; resumable."""
    try:
        names = [s.strip() for s in solvers.split(",") if s.strip()]
        for name in names:
            get_solver(name)
        model = load_prior(prior, prompt=prompt, device=device)
        degs = [canonical_spec(build_degradation(s, model.image_size)) for s in split_specs(deg)]
        sigmas = [float(s) for s in sigma.split(",")]
        if any(s < 0 for s in sigmas):
            raise ValueError("--sigma must be >= 0 (it is the noise std on the [0,1] scale)")
        seed_list = [int(s) for s in seeds.split(",")]
        source = (
            folder_images(data, model.image_size) if data else prior_samples(model, ORACLE_SAMPLES)
        )
        ids = select_ids(source.ids, images if images or data else "8")
        hparams = resolve_solvers(names, degs, steps, parse_solver_overrides(set_))
    except (ValueError, FileNotFoundError, NotImplementedError) as e:
        _fail(str(e))
    cells = plan_cells(
        prior=prior,
        dataset=source.name,
        image_ids=ids,
        degradations=degs,
        sigmas_01=sigmas,
        solvers=hparams,
        seeds=seed_list,
    )
    todo = [c for c in cells if _needs_run(out, c, force, retry_failed)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(
        json.dumps(
            {
                "solvers": names,
                "deg": degs,
                "prior": prior,
                "data": data,
                "images": ids,
                "sigma": sigmas,
                "seeds": seed_list,
                "steps": steps,
                "set": set_,
                "batch": batch,
                "prompt": prompt,
                "device": device,
                "hparams": hparams,
            },
            indent=1,
        )
    )
    console.print(f"{len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run")
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not sys.stderr.isatty(),
        ) as progress:
            task = progress.add_task("solving", total=len(todo))
            run_cells(
                model,
                source,
                todo,
                out,
                batch=batch,
                on_record=lambda r: progress.advance(task),
            )
    except KeyboardInterrupt:
        write_per_image_csv(out)
        console.print("[yellow]interrupted:[/yellow] finished cells are saved; rerun to resume")
        raise typer.Exit(130) from None
    csv = write_per_image_csv(out)
    _print_summary(csv)


def _needs_run(out: Path, cell: Cell, force: bool, retry_failed: bool) -> bool:
    """Resume rule: skip cells with a record, unless forced or a failure to retry."""
    status = existing_status(out, cell.key)
    return force or status is None or (retry_failed and status != "ok")


def _print_summary(csv: Path) -> None:
    """Mean of each metric per solver x degradation x sigma, and failure counts."""
    frame = pd.read_csv(csv)
    if frame.empty:
        return
    columns = [c for c in ("psnr", "psnr_post", "post_ratio", "residual_rms") if c in frame]
    grouped = frame.groupby(["solver", "degradation", "sigma_01"], dropna=False)
    table = Table("solver", "degradation", "sigma_01", "n", "failed", *columns)
    for (solver, degradation, sigma_01), rows in grouped:
        ok = rows[rows.status == "ok"]
        means = [f"{ok[c].mean():.3f}" if ok[c].notna().any() else "-" for c in columns]
        table.add_row(
            solver,
            degradation,
            f"{sigma_01:g}",
            str(len(rows)),
            str(int((rows.status != "ok").sum())),
            *means,
        )
    Console().print(table)
    console.print(f"per-image results: {csv}")
