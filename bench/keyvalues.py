"""KEY=VALUE command-line items (--slurm, --ray) converted to the types declared for each key."""

from __future__ import annotations

import collections.abc
import types
import typing

import yaml

TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def split_items(items: list[str], option: str) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'}; an item without '=' is a ValueError."""
    bad = [item for item in items if "=" not in item]
    if bad:
        raise ValueError(f"{option} takes KEY=VALUE items, got {', '.join(map(repr, bad))}")
    return dict(item.split("=", 1) for item in items)


def typed_items(items: list[str], declared: dict[str, object], option: str) -> dict[str, object]:
    """KEY=VALUE items converted to declared[KEY]; an unknown key lists the valid ones."""
    values = {}
    for key, text in split_items(items, option).items():
        if key not in declared:
            raise ValueError(f"unknown {option} key {key!r}; valid: {', '.join(sorted(declared))}")
        try:
            values[key] = convert(text, declared[key])
        except ValueError as e:
            raise ValueError(f"{option} {key}={text!r}: {e}") from None
    return values


def convert(text: str, annotation: object) -> object:
    """`text` as a value of `annotation` (bool, int, float, str, Optional/Union, list, dict, Any).

    Unions try their members in declared order (bool | str: 'true' is True, 'user' stays a
    string); lists and dicts are written as YAML/JSON ('[a, b]', '{mail-user: me@x.org}'),
    and a lone scalar becomes a one-item list.
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:  # Optional[X]: X's own message
            return convert(text, members[0])
        for member in members:
            try:
                return convert(text, member)
            except ValueError:
                continue
        raise ValueError(f"expected {' or '.join(type_name(m) for m in members)}")
    if annotation is bool:
        if text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
        raise ValueError("expected a boolean (true/false)")
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            raise ValueError(f"expected {type_name(annotation)}") from None
    if annotation is str:
        return text
    parsed = _yaml(text)
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        parsed = parsed if isinstance(parsed, list) else [text]
        return [convert(str(v), args[0]) for v in parsed] if args else parsed
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(parsed, dict):
            raise ValueError("expected a mapping, e.g. '{mail-type: END}'")
        return parsed
    return parsed  # typing.Any


def _yaml(text: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def type_name(annotation: object) -> str:
    """int, str, list[str]... as a user reads them."""
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
