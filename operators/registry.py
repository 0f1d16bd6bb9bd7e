"""The operator registry: names -> factories, and `name:key=value,...` spec parsing."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field

from operators.base import Degradation
from operators.blur import GaussianBlur
from operators.inpaint import CenterBoxInpaint, RandomBoxInpaint
from operators.jpeg import DifferentiableJPEG
from operators.resize import BicubicDownsample

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Factory:
    """One registry entry: builds an operator from image_size and parameter overrides."""

    cls: type
    description: str
    fixed: dict = field(default_factory=dict)

    def __call__(self, image_size: int, **params: object) -> Degradation:
        """cls.build(image_size, **fixed, **params); params override the fixed ones."""
        return self.cls.build(image_size, **{**self.fixed, **params})

    def parameter_names(self) -> list[str]:
        """The overridable parameters: cls.build's keywords after image_size."""
        return [p for p in inspect.signature(self.cls.build).parameters if p != "image_size"]

    def parameter_type(self, key: str) -> type:
        """The type of the dataclass field that parameter `key` sets."""
        return typing.get_type_hints(self.cls)[key]


DEGRADATIONS: dict[str, Factory] = {
    "inpaint": Factory(CenterBoxInpaint, "centre box inpainting, box side image_size/2"),
    "inpaint-random": Factory(
        RandomBoxInpaint,
        "random-position box inpainting, box side image_size/2, margin 16 px at 512",
    ),
    "blur": Factory(GaussianBlur, "Gaussian blur, 61x61 kernel, sigma 3, reflection padding"),
    "sr4": Factory(BicubicDownsample, "x4 antialiased bicubic downsampling", {"factor": 4}),
    "sr8": Factory(BicubicDownsample, "x8 antialiased bicubic downsampling", {"factor": 8}),
    "jpeg": Factory(DifferentiableJPEG, "JPEG quality 10, kornia differentiable codec"),
}


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'blur:sigma=2,size=31' -> ('blur', {'sigma': '2', 'size': '31'}); values stay strings."""
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"degradation spec {spec!r} has no name")
    params: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"malformed parameter {item!r} in spec {spec!r}; expected key=value")
        if key in params:
            raise ValueError(f"parameter {key!r} given twice in spec {spec!r}")
        params[key] = value
    return name, params


def _convert(value: str, typ: type, what: str) -> object:
    """The string value as typ (int, float, bool or str), or a ValueError naming `what`."""
    if typ is bool:
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"{what} expects a boolean (true/false), got {value!r}")
    try:
        return typ(value)
    except ValueError:
        raise ValueError(f"{what} expects {typ.__name__}, got {value!r}") from None


def _factory(name: str) -> Factory:
    """The registry entry for name, or a ValueError listing the valid names."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; valid names: {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name]


def build_degradation(spec: str, image_size: int) -> Degradation:
    """The operator that spec ('name' or 'name:key=value,...') describes, for image_size images."""
    name, raw = parse_spec(spec)
    factory = _factory(name)
    valid = factory.parameter_names()
    params = {}
    for key, value in raw.items():
        if key not in valid:
            raise ValueError(
                f"{name}: unknown parameter {key!r}; valid parameters: {', '.join(valid)}"
            )
        params[key] = _convert(value, factory.parameter_type(key), f"{name}: parameter {key!r}")
    return factory(image_size, **params)


def list_degradations(image_size: int = 512) -> list[tuple[str, dict, str]]:
    """(name, default params at image_size, one-line description) for every registered name."""
    return [
        (name, factory(image_size).params, factory.description)
        for name, factory in DEGRADATIONS.items()
    ]
