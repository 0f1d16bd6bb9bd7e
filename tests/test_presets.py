"""Presets: the SILO paper's settings in one option, the command line above them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from bench.cli import app
from bench.presets import PRESET_FOLDER, load_preset, preset_names

runner = CliRunner()


def bench(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def hparams(out: Path, solver: str, task: str) -> dict:
    config = json.loads((out / "config.json").read_text())
    (choice,) = [s for s in config["solvers"] if s["label"] == solver]
    return next(h for deg, h in choice["hparams"].items() if deg.split(":")[0] == task)


def test_presets_are_shipped_and_listed():
    assert preset_names() == ["silo-coco", "silo-ffhq"]
    listed = bench("list").output
    assert "silo-ffhq" in listed and "silo-coco" in listed
    for name in preset_names():  # the files parse as TOML and name only real options
        assert tomllib.loads((PRESET_FOLDER / f"{name}.toml").read_text())
        assert load_preset(name).options["sigma"] == "0.01"


def test_paper_values_of_each_preset():
    ffhq, coco = load_preset("silo-ffhq"), load_preset("silo-coco")
    assert ffhq.options["prompt"] == "A high quality photo of a face"
    assert coco.options["prompt"] == "A high quality photo"
    assert (ffhq.options["prior"], coco.options["prior"]) == ("rv51", "sd15")
    assert coco.solver_defaults == {"silo": {"sr4": {"eta": 0.75}}}
    assert ffhq.options["images"] == "@ffhq-first-1k"
    six = {"blur", "sr4", "sr8", "inpaint", "inpaint-random", "jpeg"}
    assert set(ffhq.options["deg"]) == six == set(coco.options["deg"])


def test_preset_fills_options_and_the_command_line_wins(tmp_path):
    out = tmp_path / "coco"
    common = ["--prior", "gaussian", "--deg", "sr4,inpaint", "--images", "1", "--steps", "3"]
    bench("run", "--preset", "silo-coco", *common, "--solvers", "silo", "--out", str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["preset"] == "silo-coco"
    assert config["options"]["prompt"] == "A high quality photo"  # from the preset
    assert config["options"]["prior"] == "gaussian"  # the command line over the preset
    assert config["images"] == ["0000"]
    assert hparams(out, "silo", "sr4")["eta"] == 0.75  # COCO's SR x4 default
    assert hparams(out, "silo", "inpaint")["eta"] == 1.0  # the registry's, untouched
    assert hparams(out, "silo", "sr4")["steps"] == 3

    out = tmp_path / "bracket"
    bench("run", "--preset", "silo-coco", *common, "--solvers", "silo[eta=0.2]", "--out", str(out))
    assert hparams(out, "silo[eta=0.2]", "sr4")["eta"] == 0.2

    out = tmp_path / "set"
    bench("run", "--preset", "silo-coco", *common, "--solvers", "silo", "--set", "silo.eta=0.3",
          "--prompt", "mine", "--out", str(out))  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["prompt"] == "mine"
    assert hparams(out, "silo", "sr4")["eta"] == 0.3

    out = tmp_path / "ffhq"
    bench("run", "--preset", "silo-ffhq", *common, "--solvers", "silo", "--data", "",
          "--out", str(out))  # fmt: skip
    assert hparams(out, "silo", "sr4")["eta"] == 0.5


def test_config_file_sits_between_the_command_line_and_the_preset(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text('preset = "silo-coco"\nprompt = "from the file"\nsolvers = "naive"\n')
    out = tmp_path / "run"
    bench("run", "--config", str(config), "--prior", "gaussian", "--deg", "sr4", "--images", "1",
          "--out", str(out))  # fmt: skip
    saved = json.loads((out / "config.json").read_text())["options"]
    assert saved["prompt"] == "from the file" and saved["preset"] == "silo-coco"
    assert saved["sigma"] == "0.01" and saved["images"] == "1"


def test_unknown_preset_is_a_clear_error():
    result = runner.invoke(app, ["run", "--preset", "silo-imagenet", "--dry-run"])
    assert result.exit_code == 2
    assert "unknown --preset 'silo-imagenet'; valid: silo-coco, silo-ffhq" in result.output


@pytest.mark.parametrize("name", ["silo-ffhq", "silo-coco"])
def test_preset_values_are_valid_options(name):
    from bench.cli import option_values

    assert option_values(load_preset(name).options, name)["solvers"].startswith("silo,")
