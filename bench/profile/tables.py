"""`bench profile` outputs: the runtime table (CSV, Markdown, LaTeX), call times, batch plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# (column, Markdown/LaTeX header, digits): the table a paper's runtime column comes from
SHOWN = (
    ("solver", "solver", None),
    ("batch", "batch", None),
    ("official_steps", "steps", None),
    ("s_per_image", "s/image", 2),
    ("step_s_per_image", "s/step/image", 4),
    ("peak_mem_mb", "peak MB", 0),
    ("ratio_to_silo", "x SILO", 2),
    ("flop_ratio_to_silo", "x SILO (FLOPs)", 2),
    ("tflop_per_image", "TFLOP/image", 2),
    ("harness_over_limit", "harness/limit", 3),
    ("harness_over_limit_cpu", "harness/limit (CPU s)", 3),
)
CALL_SHOWN = (
    ("network", "network", None),
    ("passes", "pass", None),
    ("batch", "batch", None),
    ("seconds", "s/call", 4),
    ("seconds_max", "slowest", 4),
    ("cpu_seconds", "CPU s/call", 4),
    ("flops", "GFLOP/call", None),
)
ENV_SHOWN = ("device_name", "torch", "diffusers", "cuda", "dtype", "tf32_matmul", "tf32_cudnn")


def formatted(frame: pd.DataFrame, shown: tuple) -> pd.DataFrame:
    """The shown columns as text: fixed digits, '--' where a value is missing."""
    out = pd.DataFrame(index=frame.index)
    for column, header, digits in shown:
        values = frame[column] if column in frame else pd.Series(None, index=frame.index)
        if column == "flops":
            out[header] = [f"{v / 1e9:,.1f}" for v in values]
        elif digits is None:
            out[header] = values.astype(str)
        else:
            out[header] = [f"{v:,.{digits}f}" if pd.notna(v) else "--" for v in values]
    return out


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub Markdown table of text cells (pipes escaped)."""

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |"

    lines = [row(list(table.columns)), row(["---"] * len(table.columns))]
    lines += [row(list(r)) for r in table.itertuples(index=False)]
    return "\n".join(lines)


def environment_line(context: dict) -> str:
    """Device, versions and precision flags in one line."""
    return ", ".join(f"{k} {context.get(k)}" for k in (*ENV_SHOWN, "matmul_precision", "threads"))


def markdown(rows: pd.DataFrame, calls: pd.DataFrame, command: str, context: dict) -> str:
    """The profile as Markdown: the command, where it ran, the solver table, the call table."""
    title = f"{context['arch']} at {context['size']} px, {context['degradation']}"
    return "\n\n".join(
        [
            f"# Runtime profile: {title}",
            f"Command: `{command}`",
            f"Machine: {context.get('host')}; {environment_line(context)}; "
            f"git {context.get('git_sha')}",
            "s/image: the full solve at the official number of steps, predicted from the "
            "solver's declared network calls at their isolated times, times the measured "
            "harness/limit (timed steps through the real solver code over the same calls made "
            "alone right after them, in the same round; the median of the rounds). "
            "x SILO (FLOPs): the same ratio from FLOP counts (torch FlopCounterMode).",
            markdown_table(formatted(rows, SHOWN)),
            "Each network call alone (s/call: per call in a block of as many back-to-back calls as "
            "the timed solve has steps, the fastest block of the repeats):",
            markdown_table(formatted(calls, CALL_SHOWN)),
        ]
    )


def plot_per_image(rows: pd.DataFrame, calls: pd.DataFrame, path: Path) -> Path:
    """Seconds per image vs batch: each solver's step and each network's fwd+bwd call."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for solver, group in rows.groupby("solver"):
        if "step_s_per_image" in group and group["step_s_per_image"].notna().any():
            ax.plot(group["batch"], group["step_s_per_image"], "o-", label=f"{solver} step")
    backward = calls[calls.passes == "fwd+bwd"]
    for network, group in backward.groupby("network"):
        ax.plot(group["batch"], group["seconds"] / group["batch"], "x--", label=f"{network} f+b")
    ax.set_xlabel("batch")
    ax.set_ylabel("seconds per image")
    ax.set_yscale("log")
    ax.set_xticks(sorted(rows["batch"].unique()))
    ax.legend(fontsize="small")
    first = rows.iloc[0]
    ax.set_title(f"{first['arch']} {first['size']} px, {first['device_name']}", fontsize="small")
    fig.savefig(path, dpi=120)
    return path


def write_outputs(
    out: Path, rows: list[dict], calls: list[dict], command: str, context: dict
) -> list[Path]:
    """profile.{csv,md,tex}, calls.csv and per_image_vs_batch.png under out; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    table, call_table = pd.DataFrame(rows), pd.DataFrame(calls)
    paths = [out / "profile.csv", out / "calls.csv", out / "profile.md", out / "profile.tex"]
    table.to_csv(paths[0], index=False)
    call_table.to_csv(paths[1], index=False)
    paths[2].write_text(markdown(table, call_table, command, context) + "\n")
    latex = formatted(table, SHOWN).to_latex(index=False, escape=True)
    paths[3].write_text(f"% {command}\n% {environment_line(context)}\n{latex}")
    if not table.empty:
        paths.append(plot_per_image(table, call_table, out / "per_image_vs_batch.png"))
    return paths
