"""Pixel-space degradation operators A and their measurement noise (DESIGN.md §3)."""

from operators.base import Degradation
from operators.blur import GaussianBlur
from operators.inpaint import CenterBoxInpaint, RandomBoxInpaint
from operators.jpeg import DifferentiableJPEG
from operators.noise import measure, sigma_01_to_pm1
from operators.registry import DEGRADATIONS, build_degradation, list_degradations, parse_spec
from operators.resize import BicubicDownsample

__all__ = [
    "DEGRADATIONS",
    "BicubicDownsample",
    "CenterBoxInpaint",
    "Degradation",
    "DifferentiableJPEG",
    "GaussianBlur",
    "RandomBoxInpaint",
    "build_degradation",
    "list_degradations",
    "measure",
    "parse_spec",
    "sigma_01_to_pm1",
]
