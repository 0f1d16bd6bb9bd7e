"""The `bench` command line: list the registries, run a sweep."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.options import RunOptions
from bench.train_operator_help import TRAIN_OPERATOR_HELP

app = typer.Typer(no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
_D = RunOptions()
OPTION_TYPES = {f.name: str(f.type) for f in fields(RunOptions)}
OPTION_NAMES = set(OPTION_TYPES)
PROGRESS_METRICS = ("psnr", "post_ratio")  # running means shown in the progress bar


def _print_version(value: bool) -> None:
    """--version: print the package version and exit."""
    if value:
        from bench import __version__

        print(f"latent-inverse-bench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version"
    ),
) -> None:
    """The `bench` command line: list the registries, run a sweep."""


def _out_console() -> Console:
    """stdout console; into a pipe, wide enough that no table is cut."""
    from bench.console import output_console

    return output_console()


@app.command("list")
def list_all() -> None:
    """Print the solvers, degradations and priors the tool knows."""
    from bench.priors import PRIOR_DESCRIPTIONS
    from operators import list_degradations
    from solvers import SOLVERS

    out = _out_console()
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
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def load_config_file(path: Path) -> dict:
    """A TOML or YAML file whose keys are `bench run` options (lists become comma lists)."""
    import tomllib
    import yaml

    text = path.read_text()
    data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values")
    config = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in OPTION_NAMES:
            raise ValueError(
                f"{path}: unknown option {key!r}; valid: {', '.join(sorted(OPTION_NAMES))}"
            )
        config[name] = _as_option_type(name, value)
    return config


def _as_option_type(name: str, value: object) -> object:
    """A config-file value converted to the option's type (lists of str become comma lists)."""
    kind = OPTION_TYPES[name]
    if name == "set":
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if "bool" in kind and not isinstance(value, bool):
        raise ValueError(f"option {name!r} expects true/false, got {value!r}")
    if "int" in kind:
        return int(value)
    return value if "bool" in kind else str(value)


def merge_config(ctx: typer.Context, given: dict, path: Path | None) -> RunOptions:
    """Command-line values win; a config file fills the options left at their defaults."""
    values = dict(given)
    if path is not None:
        for name, value in load_config_file(path).items():
            param = "set_" if name == "set" else name
            source = ctx.get_parameter_source(param)  # typer may vendor its own click enum
            if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
                values[name] = value
    return RunOptions(**values)


@app.command()
def run(
    ctx: typer.Context,
    solvers: str = typer.Option(_D.solvers, help="solvers, e.g. 'silo,psld[omega=0.5]'"),
    deg: str = typer.Option(_D.deg, help="degradation specs, e.g. 'sr4,blur:sigma=2,size=31'"),
    prior: str = typer.Option(
        _D.prior, help="embedded (default), gaussian, sd15, rv51, a Hugging Face id or a folder"
    ),
    data: str | None = typer.Option(
        None, help="folder of images (default: the embedded held-out crops / oracle samples)"
    ),
    images: str | None = typer.Option(None, help="N (first N), a:b, or ids (default: 8 / all)"),
    sigma: str = typer.Option(_D.sigma, help="noise std on the [0,1] scale, comma-separated"),
    seeds: str = typer.Option(_D.seeds, help="comma-separated seeds"),
    steps: int | None = typer.Option(
        None,
        help="diffusion steps for every solver that has them (default: official lengths; "
        "the embedded prior: 100)",
    ),
    set_: list[str] = typer.Option([], "--set", help="solver overrides, e.g. ldps.zeta=2"),
    batch: int | None = typer.Option(
        None, min=1, help="images per solve (default 1; the embedded prior: 8)"
    ),
    prompt: str = typer.Option(_D.prompt, help="text prompt for diffusers priors"),
    device: str = typer.Option(_D.device, help="torch device (cpu, cuda, cuda:1)"),
    precision: str = typer.Option(_D.precision, help="fp32 (TF32 off) | tf32 | bf16"),
    out: str = typer.Option(_D.out, help="output folder (records, PNGs, per_image.csv)"),
    workers: int = typer.Option(_D.workers, min=1, help="local worker processes (1 per GPU)"),
    executor: str = typer.Option(
        _D.executor, help="local | submitit (SLURM job array) | ray (Ray tasks)"
    ),
    save_images: bool = typer.Option(_D.save_images, help="write PNGs of every cell"),
    operators: list[str] = typer.Option(
        [], help="folder of trained SILO operators (repeatable; default: user cache + shipped)"
    ),
    force: bool = typer.Option(False, help="recompute cells that already have a record"),
    retry_failed: bool = typer.Option(False, help="recompute cells whose record is a failure"),
    config: Path | None = typer.Option(None, help="TOML/YAML file of options (CLI wins)"),
    dry_run: bool = typer.Option(False, help="print the plan and exit"),
    slurm: list[str] = typer.Option([], help="submitit parameters, e.g. slurm_partition=gpu"),
    ray: list[str] = typer.Option(
        [], help="Ray parameters: address=auto, num_cpus=N, num_gpus=N (per task)"
    ),
) -> None:
    """Sweep solvers x degradations x sigmas x seeds x images; resumable."""
    from bench.data import ImageLoadError
    from bench.runner import describe_plan, make_plan, save_config
    from bench.store import write_per_image_csv

    given = {k: v for k, v in locals().items() if k in OPTION_NAMES}
    given["set"] = set_
    try:
        options = merge_config(ctx, given, config)
        plan = make_plan(options)
    except (ValueError, FileNotFoundError, NotImplementedError, ImageLoadError) as e:
        _fail(str(e))
    rows = describe_plan(plan)
    table = Table(*(rows[0] if rows else ["solver"]))
    for row in rows:
        table.add_row(
            *(
                f"{v:,.0f}" if isinstance(v, float) and k != "sigma_01" else str(v)
                for k, v in row.items()
            )
        )
    _out_console().print(table)
    for (solver, deg), why in plan.skipped.items():
        console.print(f"skipped {solver} x {deg}: {escape(why)}")
    done = len(plan.cells) - len(plan.todo)
    console.print(f"{len(plan.cells)} cells, {done} already done, {len(plan.todo)} to run")
    if dry_run:
        return
    save_config(plan)
    out_dir = Path(options.out)
    try:
        _execute(plan, options, {"submitit": slurm, "ray": ray})
    except (ValueError, RuntimeError) as e:  # executor set-up: bad parameters, missing extra
        write_per_image_csv(out_dir)
        _fail(str(e))
    except KeyboardInterrupt:
        write_per_image_csv(out_dir)
        console.print("[yellow]interrupted:[/yellow] finished cells are saved; rerun to resume")
        raise typer.Exit(130) from None
    _print_summary(write_per_image_csv(out_dir))


def _key_values(items: list[str], option: str) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'}; an item without '=' is a ValueError."""
    bad = [item for item in items if "=" not in item]
    if bad:
        raise ValueError(f"{option} takes KEY=VALUE items, got {', '.join(map(repr, bad))}")
    return dict(item.split("=", 1) for item in items)


def _execute(plan, options: RunOptions, executor_params: dict[str, list[str]]) -> None:
    """Run the plan's cells under a progress bar showing each solver's running mean metrics."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bench.executors import run_local, run_ray, run_submitit, shard_cells
    from bench.progress import ProgressLines

    means: dict[tuple[str, str], list[float]] = defaultdict(list)
    lines = None
    if not console.is_terminal:  # a log file: plain lines instead of a live bar
        lines = ProgressLines(len(plan.todo), _plain_line)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("solving", total=len(plan.todo))

        def on_record(record: dict) -> None:
            for metric in PROGRESS_METRICS:
                if record.get(metric) is not None:
                    means[(record["solver_label"], metric)].append(record[metric])
            summary = " | ".join(
                f"{label} {metric} {sum(v) / len(v):.2f}"
                for (label, metric), v in sorted(means.items())
            )
            progress.update(task, advance=1, description=summary)

        def on_batch(records: list[dict]) -> None:
            if lines is not None:
                lines.finished(len(records), progress.tasks[task].description)

        if options.executor == "local" and options.workers == 1:
            from bench.execute import run_cells

            run_cells(
                plan.context,
                plan.todo,
                batch=options.batch,
                on_record=on_record,
                on_batch=on_batch,
            )
            return
        shards = shard_cells(plan.todo, max(options.batch, 8))
        spec = options.spec()
        if options.executor == "local":
            devices = (
                [options.device]
                if not options.device.startswith("cuda")
                else [f"cuda:{i}" for i in range(options.workers)]
            )
            results = run_local(
                spec, shards, workers=options.workers, batch=options.batch, devices=devices
            )
        elif options.executor == "submitit":
            parameters = _key_values(executor_params["submitit"], "--slurm")
            results = run_submitit(
                spec,
                shards,
                batch=options.batch,
                folder=Path(options.out) / "submitit",
                cluster=parameters.pop("cluster", None),
                parameters=parameters,
            )
        else:
            parameters = _key_values(executor_params["ray"], "--ray")
            results = run_ray(spec, shards, batch=options.batch, parameters=parameters)
        for count in results:
            progress.update(task, advance=count)
            if lines is not None:
                lines.finished(count)


def _plain_line(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_summary(csv: Path) -> None:
    """Mean of each metric per solver x degradation x sigma, and failure counts."""
    import pandas as pd

    frame = pd.read_csv(csv)
    if frame.empty:
        return
    columns = [
        c for c in ("psnr", "psnr_post", "post_ratio", "residual_rms", "runtime_s") if c in frame
    ]
    grouped = frame.groupby(["solver_label", "degradation", "sigma_01"], dropna=False)
    table = Table("solver", "degradation", "sigma_01", "n", "failed", *columns)
    for (solver, degradation, sigma_01), rows in grouped:
        ok = rows[rows.status == "ok"]
        means = [f"{ok[c].mean():.3f}" if ok[c].notna().any() else "-" for c in columns]
        failed = str(int((rows.status != "ok").sum()))
        table.add_row(solver, degradation, f"{sigma_01:g}", str(len(rows)), failed, *means)
    _out_console().print(table)
    console.print(f"per-image results: {csv}")


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(
        ...,
        help="run folders written by `bench run`; merged, a cell present in several "
        "counts once (the last finished)",
    ),
    out: Path | None = typer.Option(
        None, help="where per_image.csv, summary.{csv,md,tex}, plots/ go (default: the first run)"
    ),
    compare: str | None = typer.Option(
        None, help="two solver labels 'A,B': paired A-B differences with 95% CI and Wilcoxon p"
    ),
    fid_backend: str = typer.Option(
        "torchmetrics",
        help="FID/KID: torchmetrics (torch-fidelity Inception, as SILO) or clean-fid",
    ),
    lpips: bool = typer.Option(True, help="LPIPS alex/vgg from the PNGs (see `bench doctor`)"),
    fid: bool = typer.Option(True, help="FID/KID per solver x degradation x sigma vs the truth"),
    fid_features: str | None = typer.Option(
        None, help="custom feature extractor 'package.module:attr' instead of Inception"
    ),
    device: str | None = typer.Option(None, help="device for SSIM/LPIPS/Inception (default auto)"),
) -> None:
    """Tables (CSV, Markdown, LaTeX), plots, paired comparisons and FID/KID from run folders."""
    from bench.report import report_command

    try:
        report_command(
            run_dirs,
            out,
            compare,
            fid_backend,
            lpips,
            fid,
            fid_features=fid_features,
            device=device,
        )
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))


_T = TRAIN_OPERATOR_HELP


@app.command("train-operator")
def train_operator(
    prior: str = typer.Option(..., help=_T["prior"]),
    deg: str = typer.Option(..., help=_T["deg"]),
    data: str | None = typer.Option(None, help=_T["data"]),
    steps: int = typer.Option(2000, min=1, help=_T["steps"]),
    batch: int = typer.Option(16, min=1, help=_T["batch"]),
    lr: float | None = typer.Option(None, help=_T["lr"]),
    out: Path | None = typer.Option(None, help=_T["out"]),
    variant: str = typer.Option("preserve", help=_T["variant"]),
    sigma_max: float | None = typer.Option(None, help=_T["sigma_max"]),
    loss: str = typer.Option("l1", help=_T["loss"]),
    seed: int = typer.Option(0, help=_T["seed"]),
    val_fraction: float = typer.Option(0.05, help=_T["val_fraction"]),
    checkpoint_every: int = typer.Option(500, min=0, help=_T["checkpoint_every"]),
    resume: Path | None = typer.Option(None, help=_T["resume"]),
    device: str = typer.Option("cpu", help=_T["device"]),
    widths: str | None = typer.Option(None, help=_T["widths"]),
) -> None:
    """Train SILO's latent operator H(z) ~ E(A(D(z))) for one (prior, degradation)."""
    from bench.train_operator import train_operator_command

    try:
        path = train_operator_command(
            prior,
            deg,
            data,
            steps,
            batch,
            lr,
            out,
            variant,
            sigma_max,
            loss,
            seed,
            val_fraction,
            checkpoint_every,
            resume,
            device,
            widths,
        )
    except (ValueError, FileNotFoundError, NotImplementedError) as e:
        _fail(str(e))
    console.print(f"operator saved: {path}")


@app.command()
def profile(
    arch: str = typer.Option("sd15", help="sd15 | sd21-base | embedded | a diffusers folder"),
    size: int | None = typer.Option(None, help="image size (default: the architecture's)"),
    solvers: str = typer.Option("silo,ldps,psld,gml-dps", help="solvers to time"),
    deg: str = typer.Option("sr4", help="degradation spec the solvers run"),
    sigma: float = typer.Option(0.01, help="noise std on the [0,1] scale"),
    device: str = typer.Option("cpu", help="torch device"),
    precision: str = typer.Option("fp32", help="fp32 (TF32 off) | tf32 | bf16"),
    batch: str = typer.Option("1", help="batch sizes, comma-separated, e.g. 1,4,8"),
    steps: int = typer.Option(2, help="solver steps timed through the real solver code"),
    warmup_steps: int = typer.Option(1, help="untimed solver steps before them"),
    repeats: int = typer.Option(3, help="timed calls of each network pass alone (fastest)"),
    solve_repeats: int = typer.Option(1, help="timed solves of each solver (fastest)"),
    out: str = typer.Option("runs/profile", help="folder for profile.{csv,md,tex} and plots"),
) -> None:
    """Runtime without weights: random-weight networks, each call alone and inside the solvers."""
    from bench.profile.command import ProfileOptions, profile_command

    options = ProfileOptions(**{k: v for k, v in locals().items() if k in PROFILE_OPTIONS})
    try:
        paths = profile_command(options, _plain_line)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    _out_console().print(paths[2].read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"written: {', '.join(str(p) for p in paths)}")


PROFILE_OPTIONS = (
    "arch",
    "size",
    "solvers",
    "deg",
    "sigma",
    "device",
    "precision",
    "batch",
    "steps",
    "warmup_steps",
    "repeats",
    "solve_repeats",
    "out",
)


@app.command()
def doctor() -> None:
    """List every weight file and model the tool can use: found or missing, where, and how."""
    from bench.weights import doctor_command

    doctor_command()


if __name__ == "__main__":
    app()
