"""Strict loading of typed config dataclasses from plain mappings (YAML, JSON, command-line flags).

Every value is checked against its field's annotation when it is loaded, and the first problem
raises one GrscaleError naming the field's full path and the value: `trial.optim.lr: expected a
number, got '1e-x'`. PyYAML reads `1e-3` (no dot) as a string, so a number field accepts a string
that spells a number. Unknown keys fail, and a key that moved names its new place (`moved`).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Union

from scaling.errors import GrscaleError


def from_mapping(cls: type, data: Any, where: str, moved: dict[str, str] | None = None) -> Any:
    """An instance of dataclass `cls` from a complete mapping; nested dataclasses from nested mappings."""
    values = _checked_fields(cls, data, where, moved, partial=False)
    try:
        return cls(**values)
    except TypeError as error:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in values and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise GrscaleError(f"{where}: missing {', '.join(missing)}") from None
        raise GrscaleError(f"{where}: {error}") from None
    except ValueError as error:  # a dataclass's own check of its values
        raise GrscaleError(f"{where}: {error}") from None


def check_partial(cls: type, data: Any, where: str, moved: dict[str, str] | None = None) -> dict[str, Any]:
    """`data` with every value it holds checked and converted as `from_mapping` would, without
    requiring any field: a typed partial config (a spec's shared `trial:` block, a YAML file that
    command-line flags complete)."""
    return _checked_fields(cls, data, where, moved, partial=True)


def to_mapping(instance: Any) -> dict[str, Any]:
    """Plain data (tuples as lists), as YAML and JSON files hold it: from_mapping reads it back."""
    return _plain(dataclasses.asdict(instance))


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`, section by section (nested mappings merge, other values replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted paths whose values differ between two plain mappings, with both values."""
    found = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}{key}"
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{path}.")
        elif a != b:
            found.append(f"{path} {a!r} -> {b!r}")
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _checked_fields(cls: type, data: Any, where: str, moved: dict[str, str] | None, partial: bool) -> dict[str, Any]:
    if isinstance(data, cls):
        data = dataclasses.asdict(data)
    if not isinstance(data, dict):
        raise GrscaleError(f"{where}: expected a mapping of {cls.__name__} fields, got {_shown(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in fields:
            if moved and key in moved:
                raise GrscaleError(f"{where}.{key}: this field moved to {moved[key]}")
            raise GrscaleError(f"{where}: unknown field {key!r}; known: {', '.join(fields)}")
        values[key] = _convert(hints[key], value, f"{where}.{key}", partial)
    return values


def _convert(annotation: Any, value: Any, where: str, partial: bool) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, where, partial)
        # A list, a section or a name (`budgets: [..]` or `budgets: {min, max}`, `dataset: ml-1m` or
        # `dataset: {path, ...}`): the value's shape decides.
        for option in options:
            if dataclasses.is_dataclass(option) and isinstance(value, (dict, option)) or (
                    isinstance(value, (list, tuple)) and typing.get_origin(option) in (list, tuple)) or (
                    option is str and isinstance(value, str)):
                return _convert(option, value, where, partial)
        shapes = " or ".join("a mapping" if dataclasses.is_dataclass(o) else "a string" if o is str else "a list"
                             for o in options)
        raise GrscaleError(f"{where}: expected {shapes}, got {_shown(value)}")
    if dataclasses.is_dataclass(annotation):
        if partial:
            return _checked_fields(annotation, value, where, None, partial=True)
        return from_mapping(annotation, value, where)
    if annotation is Any:
        return value
    if annotation is float:
        return _number(value, where)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise GrscaleError(f"{where}: expected an integer, got {_shown(value)}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise GrscaleError(f"{where}: expected true or false, got {_shown(value)}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise GrscaleError(f"{where}: expected a string, got {_shown(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise GrscaleError(f"{where}: expected a list, got {_shown(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]", partial) for i, v in enumerate(value))
        if len(value) != len(args):
            raise GrscaleError(f"{where}: expected a list of {len(args)} values, got {_shown(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]", partial) for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise GrscaleError(f"{where}: expected a list, got {_shown(value)}")
        return [_convert(args[0], v, f"{where}[{i}]", partial) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise GrscaleError(f"{where}: expected a mapping, got {_shown(value)}")
        return {_convert(args[0], k, f"{where} key", partial): _convert(args[1], v, f"{where}.{k}", partial)
                for k, v in value.items()}
    raise TypeError(f"{where}: unsupported annotation {annotation!r}")  # a bug in a config class


def _number(value: Any, where: str) -> float:
    """A finite float from a number or a string that spells one (YAML's `1e-3`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise GrscaleError(f"{where}: expected a number, got {_shown(value)}")
    try:
        number = float(value)
    except ValueError:
        raise GrscaleError(f"{where}: expected a number, got {_shown(value)}") from None
    if not math.isfinite(number):
        raise GrscaleError(f"{where}: expected a finite number, got {_shown(value)}")
    return number


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
