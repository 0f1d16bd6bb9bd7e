"""The `bench` command line: list the registries, run a sweep."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from bench.console import output_console
from bench.grid import auto_grid
from bench.options import RunOptions
from bench.presets import load_preset, preset_names
from bench.slurm import PASS_SECONDS, TIME_RULE
from bench.train_operator_help import TRAIN_OPERATOR_HELP

if TYPE_CHECKING:
    from bench.executors import ClusterOptions

app = typer.Typer(no_args_is_help=True, help=__doc__)
console = output_console(stderr=True)  # messages to a log file keep their lines whole
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


@app.command("list")
def list_all() -> None:
    """Print the solvers, degradations and priors the tool knows."""
    from bench.priors import PRIOR_DESCRIPTIONS
    from operators import list_degradations
    from solvers import SOLVERS

    out = output_console()
    solvers = Table(
        "solver", "default hyperparameters", "per-degradation", "step sizes", "what it is"
    )
    for name, spec in sorted(SOLVERS.items()):
        per_task = "; ".join(f"{d}: {json.dumps(h)}" for d, h in spec.task_defaults.items())
        steps = ", ".join(auto_grid(name, spec.step_sizes))
        row = (name, json.dumps(spec.defaults), per_task or "-", steps or "-", spec.description)
        solvers.add_row(*map(escape, row))
    degradations = Table("degradation", "default parameters", "what it is")
    for name, params, description in list_degradations():
        degradations.add_row(*map(escape, (name, json.dumps(params), description)))
    priors = Table("prior", "what it is")
    for name, description in PRIOR_DESCRIPTIONS.items():
        priors.add_row(name, description)
    presets = Table("preset", "what it is")
    for name in preset_names():
        presets.add_row(name, load_preset(name).description)
    for table in (solvers, degradations, priors, presets):
        out.print(table)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def load_config_file(path: Path) -> dict:
    """A TOML or YAML file whose keys are `bench run` options (lists become comma lists)."""
    import tomllib
    import yaml

    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    except (ValueError, yaml.YAMLError) as e:
        raise ValueError(f"--config {path}: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values")
    return option_values(data, str(path))


def option_values(data: dict, where: str) -> dict:
    """Config keys ('save-images' or 'save_images') checked and converted to option types."""
    config = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in OPTION_NAMES:
            raise ValueError(
                f"{where}: unknown option {key!r}; valid: {', '.join(sorted(OPTION_NAMES))}"
            )
        config[name] = _as_option_type(name, value)
    return config


def _as_option_type(name: str, value: object) -> object:
    """A config-file value converted to the option's type (lists of str become comma lists)."""
    kind = OPTION_TYPES[name]
    if name == "tuned":
        from bench.tuned import check_tuned

        return check_tuned(value)
    if name == "set":
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if "bool" in kind and not isinstance(value, bool):
        raise ValueError(f"option {name!r} expects true/false, got {value!r}")
    if "int" in kind:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"option {name!r} expects an integer, got {value!r}") from None
    return value if "bool" in kind else str(value)


def merge_config(
    ctx: typer.Context, given: dict, path: Path | None, preset: str | None = None
) -> RunOptions:
    """Command-line values win; a config file, then a preset, fill the options left at their
    defaults."""
    values = dict(given)
    layers = [load_config_file(path)] if path is not None else []
    preset = preset or (layers[0].get("preset") if layers else None)
    if preset:
        layers.append(option_values(load_preset(preset).options, f"preset {preset!r}"))
    filled: set[str] = set()
    for layer in layers:
        for name, value in layer.items():
            param = "set_" if name == "set" else name
            source = ctx.get_parameter_source(param)  # typer may vendor its own click enum
            at_default = source is None or source.name in ("DEFAULT", "DEFAULT_MAP")
            if at_default and name not in filled:
                values[name] = value
                filled.add(name)
    return RunOptions(**values)


@app.command()
def run(
    ctx: typer.Context,
    solvers: str = typer.Option(
        _D.solvers, help="solvers, e.g. 'silo,psld[omega=0.5]', grids 'ldps[zeta=[1,2]]'"
    ),
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
    set_: list[str] = typer.Option(
        [], "--set", help="solver overrides, e.g. ldps.zeta=2, grids ldps.zeta=log(0.1,10,5)"
    ),
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
    config: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="TOML/YAML file of options (CLI wins)"
    ),
    preset: str | None = typer.Option(
        None, help="a paper's setting, e.g. silo-ffhq (see `bench list`; CLI and --config win)"
    ),
    dry_run: bool = typer.Option(False, help="print the plan and exit"),
    status: bool = typer.Option(
        False, "--status", help="print how many cells of --out are done/failed/claimed; run nothing"
    ),
    slurm: list[str] = typer.Option(
        [],
        help="submitit parameters, typed as submitit declares them, e.g. slurm_partition=gpu, "
        "timeout_min=600, slurm_array_parallelism=8, cluster=local. " + TIME_RULE,
    ),
    slurm_pass_seconds: float = typer.Option(
        PASS_SECONDS, min=0, help="seconds per network pass for the default SLURM time limit"
    ),
    ray: list[str] = typer.Option(
        [],
        help="Ray parameters: address=auto, num_cpus=N, num_gpus=N (per task), "
        "runtime_env=JSON (merged into the default, which ships this checkout's code)",
    ),
) -> None:
    """Sweep solvers x degradations x sigmas x seeds x images; resumable."""
    from bench.data import ImageLoadError
    from bench.executors import ClusterOptions
    from bench.run_state import run_state
    from bench.runner import make_plan

    given = {k: v for k, v in locals().items() if k in OPTION_NAMES}
    given["set"] = set_
    try:
        options = merge_config(ctx, given, config, preset)
        if status:
            output_console().print(escape(run_state(Path(options.out)).line()), soft_wrap=True)
            return
        plan = make_plan(options)
    except (ValueError, FileNotFoundError, NotImplementedError, ImageLoadError) as e:
        _fail(str(e))
    _show_plan(plan)
    if dry_run:
        return
    _print_summary(_run_plan(plan, ClusterOptions(slurm, slurm_pass_seconds, ray)))
    _exit_on_failures(plan)


def _show_plan(plan) -> None:
    """The plan table (cells and network passes per row), what is skipped and what is left."""
    from bench.runner import describe_plan

    rows = describe_plan(plan)
    table = Table(*(rows[0] if rows else ["solver"]))
    for row in rows:
        table.add_row(
            *(
                f"{v:,.0f}" if isinstance(v, float) and k != "sigma_01" else escape(str(v))
                for k, v in row.items()
            )
        )
    output_console().print(table)
    for (solver, deg), why in plan.skipped.items():
        console.print(f"skipped {escape(solver)} x {escape(deg)}: {escape(why)}")
    done = len(plan.cells) - len(plan.todo)
    console.print(f"{len(plan.cells)} cells, {done} already done, {len(plan.todo)} to run")


def _run_plan(plan, cluster: ClusterOptions) -> Path:
    """Save the config, run the cells left; per_image.csv is written however this ends."""
    from bench.run_guard import (
        EXIT_FILESYSTEM,
        EXIT_INTERRUPTED,
        EXIT_TERMINATED,
        Terminated,
        guarded_run,
        os_error_line,
    )
    from bench.runner import save_config

    out_dir = Path(plan.options.out)
    try:
        with guarded_run(out_dir):
            save_config(plan)
            _execute(plan, plan.options, cluster)
    except (ValueError, RuntimeError) as e:  # executor set-up: bad parameters, missing extra
        _fail(str(e))
    except OSError as e:
        _fail(os_error_line(e, out_dir), EXIT_FILESYSTEM)
    except Terminated:
        console.print("[yellow]terminated (SIGTERM):[/yellow] finished cells are saved; rerun")
        raise typer.Exit(EXIT_TERMINATED) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/yellow] finished cells are saved; rerun to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    return out_dir / "per_image.csv"


def _exit_on_failures(plan) -> None:
    """Say which cells other processes still hold; exit 3 when any cell of the plan failed."""
    from bench.run_guard import EXIT_CELLS_FAILED
    from bench.run_state import failed_cells, run_state

    out_dir = Path(plan.options.out)
    state = run_state(out_dir)
    if state.claimed:
        console.print(escape(f"{state.line()}; per_image.csv is complete when they end"))
    failed = failed_cells(out_dir, [c.key for c in plan.cells])
    if failed:
        why = ", ".join(f"{s} {n}" for s, n in sorted(failed.items()))
        _fail(
            f"{sum(failed.values())} of {len(plan.cells)} cells failed ({why}); see the error "
            "column of per_image.csv, --retry-failed reruns them",
            EXIT_CELLS_FAILED,
        )


def _execute(plan, options: RunOptions, cluster: ClusterOptions) -> None:
    """Run the plan's cells under a progress bar showing each solver's running mean metrics."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bench.executors import run_on_executor
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
                f"{escape(label)} {metric} {sum(v) / len(v):.2f}"
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
        results = run_on_executor(options, plan.todo, cluster)
        for count in results:
            progress.update(task, advance=count)
            if lines is not None:
                lines.finished(count)


def _plain_line(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_summary(csv: Path) -> None:
    """Mean of each metric per solver x degradation x sigma, and failure counts."""
    import pandas as pd

    if not csv.is_file():
        return
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
        table.add_row(
            escape(solver), escape(degradation), f"{sigma_01:g}", str(len(rows)), failed, *means
        )
    output_console().print(table)
    console.print(f"per-image results: {csv}")


@app.command()
def tune(
    solvers: str = typer.Option(..., help="solvers, e.g. 'ldps,psld' (grids allowed in brackets)"),
    grid: list[str] = typer.Option(
        ["auto"],
        help="grid items, e.g. 'ldps.zeta=log(0.1,10,5)', 'psld.omega=[0.5,1,2]', "
        "'silo.eta=*[1,3,10]' (x official), or 'auto' (each solver's declared step sizes)",
    ),
    val: str = typer.Option(..., help="validation images (N, a:b or ids), disjoint from --test"),
    test: str = typer.Option(..., help="test images, run with the chosen points"),
    metric: str = typer.Option("psnr", help="what the best point maximises/minimises"),
    deg: str = typer.Option(_D.deg, help="degradation specs"),
    prior: str = typer.Option(_D.prior, help="prior (as for `bench run`)"),
    data: str | None = typer.Option(None, help="folder of images (default: the prior's)"),
    sigma: str = typer.Option(_D.sigma, help="noise std on the [0,1] scale, comma-separated"),
    seeds: str = typer.Option(_D.seeds, help="comma-separated seeds"),
    steps: int | None = typer.Option(None, help="diffusion steps of every solver"),
    set_: list[str] = typer.Option([], "--set", help="fixed solver overrides, e.g. ldps.zeta=2"),
    batch: int | None = typer.Option(None, min=1, help="images per solve"),
    device: str = typer.Option(_D.device, help="torch device"),
    precision: str = typer.Option(_D.precision, help="fp32 | tf32 | bf16"),
    out: str = typer.Option("runs/tune", help="folder: val/, test/, tuned.toml, tuning.*"),
    workers: int = typer.Option(_D.workers, min=1, help="local worker processes"),
    operators: list[str] = typer.Option([], help="folders of trained SILO operators"),
    save_images: bool = typer.Option(_D.save_images, help="write PNGs of every cell"),
    dry_run: bool = typer.Option(False, help="print the validation plan and exit"),
) -> None:
    """Tune each solver's step sizes on a validation split, then run the test split with the
    best point per (solver, degradation, sigma, steps); resumable, writes tuned.toml."""
    import tomli_w

    from bench import tune as tuning
    from bench.data import ImageLoadError
    from bench.executors import ClusterOptions
    from bench.runner import make_plan
    from bench.tuning_report import write_tuning_report

    given = {k: v for k, v in locals().items() if k in OPTION_NAMES}
    base = RunOptions(**given, set=set_)
    try:
        tuning.check_metric(metric)
        val_plan = make_plan(tuning.validation_options(base, grid, val))
        tuning.check_disjoint(val_plan.context.source.ids, val, test)
    except (ValueError, FileNotFoundError, NotImplementedError, ImageLoadError) as e:
        _fail(str(e))
    _show_plan(val_plan)
    if dry_run:
        return
    _run_plan(val_plan, ClusterOptions([], PASS_SECONDS, []))
    keys = {c.key for c in val_plan.cells}
    points = tuning.choose(tuning.score_points(Path(val_plan.options.out), keys, metric), metric)
    entries = tuning.tuned_entries(points, metric)
    test_opts = tuning.test_options(replace(base, steps=val_plan.options.steps), test, entries)
    config = Path(out) / "tuned.toml"
    config.write_text(tomli_w.dumps(tuning.tuned_toml(test_opts)))
    console.print(f"chosen points: {config} (`bench run --config {config}` reruns the test)")
    try:
        test_plan = make_plan(test_opts)
    except (ValueError, FileNotFoundError, NotImplementedError, ImageLoadError) as e:
        _fail(str(e))
    _show_plan(test_plan)
    _print_summary(_run_plan(test_plan, ClusterOptions([], PASS_SECONDS, [])))
    for path in write_tuning_report(Path(out), points, entries, metric):
        console.print(f"tuning report: {path}")
    _exit_on_failures(test_plan)


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
    offline: bool = typer.Option(
        False, help="never download missing metric weights (also: HF_HUB_OFFLINE=1)"
    ),
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
            offline=offline,
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


@app.command("import-operator")
def import_operator(
    file: Path = typer.Argument(..., help="an operator checkpoint of the official SILO release"),
    prior: str = typer.Option(..., help="the prior it belongs to, as `bench run --prior` names it"),
    deg: str = typer.Option(..., help="its degradation spec, e.g. 'sr4' (see `bench list`)"),
    variant: str = typer.Option(..., help="official network: cnn | preserve | readout"),
    out: Path | None = typer.Option(None, help="folder to write to (default: the user cache)"),
) -> None:
    """Convert an official SILO operator into our checkpoint format, found by `bench run`."""
    from operators.latent.official import import_operator as convert

    try:
        path = convert(file, prior, deg, variant, out)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    console.print(f"operator imported: {path}")


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
    repeats: int = typer.Option(3, help="timed blocks of --steps calls per network pass (fastest)"),
    solve_repeats: int = typer.Option(
        1, help="rounds of a timed solve + its calls alone (harness/limit: the median round)"
    ),
    out: str = typer.Option("runs/profile", help="folder for profile.{csv,md,tex} and plots"),
) -> None:
    """Runtime without weights: random-weight networks, each call alone and inside the solvers."""
    from bench.profile.command import ProfileOptions, profile_command

    options = ProfileOptions(**{k: v for k, v in locals().items() if k in PROFILE_OPTIONS})
    try:
        paths = profile_command(options, _plain_line)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    output_console().print(paths[2].read_text(), markup=False, highlight=False, soft_wrap=True)
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
def doctor(
    json_: bool = typer.Option(False, "--json", help="print the status as JSON (for scripts)"),
) -> None:
    """List every weight file and model the tool can use; exit 1 if the default report lacks one."""
    from bench.weights import doctor_command

    raise typer.Exit(doctor_command(as_json=json_))


@app.command("fetch-weights")
def fetch_weights(
    keys: list[str] = typer.Argument(
        None, help="manifest keys (see `bench doctor`); none: what the default report needs"
    ),
    to: Path | None = typer.Option(
        None,
        help="install into this folder (default: $LATENT_BENCH_WEIGHTS, else each "
        "library's own folder)",
    ),
    from_: str | None = typer.Option(
        None, "--from", help="mirror: an http(s) base URL or a folder holding the same file names"
    ),
    force: bool = typer.Option(False, help="download again even when the file is present"),
) -> None:
    """Download metric weights (LPIPS backbones, Inception), check their sha256, install them."""
    from bench.fetch import fetch_command

    try:
        code = fetch_command(keys or [], to, from_, force, console)
    except ValueError as e:
        _fail(str(e))
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
