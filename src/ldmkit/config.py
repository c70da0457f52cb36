"""Typed, strict configuration: frozen dataclasses <-> dicts / YAML, dotted overrides, presets.

Every component owns a frozen dataclass; this module turns plain data into them and back. An
unknown key or a value of the wrong type is an error that names the key and lists the valid ones.
A union of dataclasses with a `kind: Literal[...]` field is a tagged union: each entry's `kind`
picks its class. A dataclass whose keys changed reads older data through its classmethod
`upgrade_config(data) -> data`.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message says which and how to fix it."""


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from `data`, strictly: unknown keys and wrong types are errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    upgrade = getattr(cls, "upgrade_config", None)
    if upgrade is not None:
        try:
            data = upgrade(dict(data))
        except ValueError as error:
            raise ConfigError(f"{where or cls.__name__}: {error}") from error
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key {_join(where, unknown[0])!r}; valid keys here: "
            f"{', '.join(sorted(fields))}"
        )
    kwargs = {k: _coerce(hints[k], v, _join(where, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or cls.__name__}: {error}") from error


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict/list data suitable for JSON or YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` strings (values parsed as YAML) to a nested dict, returning a copy; a
    number indexes a list (`model.conditioners.0.dropout=0.2`)."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        parts = key.strip().split(".")
        node: Any = result
        for i, part in enumerate(parts[:-1]):
            child = _child(node, part, key)
            if not isinstance(child, dict | list):
                valid = ", ".join(k for k, v in _items(node) if isinstance(v, dict | list))
                raise ConfigError(
                    f"override {key!r}: {'.'.join(parts[: i + 1])!r} is not a config section; "
                    f"sections here: {valid}"
                )
            node = child
        last = parts[-1]
        if isinstance(node, list):
            _child(node, last, key)  # checks the index
            node[int(last)] = _parse_value(raw, key)
            continue
        if last not in node:
            raise ConfigError(
                f"override {key!r}: unknown key {last!r}; valid keys here: "
                f"{', '.join(sorted(node))}"
            )
        node[last] = _parse_value(raw, key)
    return result


def _items(node: dict[str, Any] | list[Any]) -> list[tuple[str, Any]]:
    return (
        [(str(i), v) for i, v in enumerate(node)] if isinstance(node, list) else list(node.items())
    )


def _child(node: dict[str, Any] | list[Any], part: str, key: str) -> Any:
    """`node[part]`: a key of a mapping, or an index into a list (an error names the range)."""
    if isinstance(node, dict):
        return node.get(part)
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(
            f"override {key!r}: {part!r} is not an index of this list of {len(node)} "
            f"(0..{len(node) - 1})"
        )
    return node[int(part)]


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping from `path` with a clear error when it is missing or not a mapping."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        with path.open() as handle:
            data = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        raise ConfigError(
            f"config file {path} is not valid YAML: {_yaml_problem(error)}"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at its top level")
    return data


def save_yaml(obj: Any, path: Path) -> None:
    """Write a dataclass config as YAML."""
    path.write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))


def _parse_value(raw: str, key: str) -> Any:
    """YAML scalar, except that `1e-3` (a string to YAML 1.1) is read as the float it means."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"override {key}={raw}: not a YAML value ({_yaml_problem(error)}); quote strings "
            "and close brackets, e.g. --set 'model.channel_mult=[1, 2, 4]'"
        ) from error
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _yaml_problem(error: yaml.YAMLError) -> str:
    """The YAML error in one line, with its line and column where known."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def _tagged(args: tuple[Any, ...]) -> dict[str, type] | None:
    """{kind: class} when every member of a union is a dataclass with a `kind: Literal[...]`
    field (a tagged union), else None."""
    found: dict[str, type] = {}
    for arg in args:
        if arg is type(None):
            continue
        if not dataclasses.is_dataclass(arg):
            return None
        hint = typing.get_type_hints(arg).get("kind")
        if get_origin(hint) is not Literal:
            return None
        found.update({str(kind): arg for kind in get_args(hint)})  # type: ignore[misc]
    return found or None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = _tagged(args)
        if kinds is not None:
            if not isinstance(value, Mapping) or value.get("kind") not in kinds:
                got = value.get("kind") if isinstance(value, Mapping) else value
                raise ConfigError(
                    f"{where}: kind {got!r} is not one of {', '.join(kinds)} (each entry is a "
                    "mapping with a kind)"
                )
            return from_dict(kinds[value["kind"]], value, where)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError("; ".join(errors))
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    if hint is Any:
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where}: expected {name}, got {value!r} ({type(value).__name__})")
