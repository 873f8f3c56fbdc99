"""Settings dataclasses that carry their own command-line face (nerfstudio's way, in a few lines).

A field declared with `option(...)` knows its flag, help, type, choices and the check its value
must pass; whether it changes a compressed result (`result=False` for threads, progress, device:
what a cache key leaves out). The CLIs then derive their arguments and their settings from the
dataclasses instead of mapping each flag by hand:

    add_options(parser, TrainConfig, ["steps", "seed"])      # --steps, --seed with help, defaults
    train = from_args(TrainConfig, args, ["steps", "seed"])  # checked; unset flags keep defaults
    result_fields(settings)                                  # what a cache key hashes

An unset flag arrives as None, so a field's default lives only in its dataclass.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from .errors import NTCError


class OptionError(NTCError):
    """A flag's value outside what its setting accepts (one line naming the flag)."""


def option(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,
           type: Callable | None = None, choices: Sequence | None = None,
           metavar: str | None = None, check: Callable[[Any], str | None] | None = None,
           result: bool = True, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a command-line face. `check(value)` returns what is expected when
    the value is refused (e.g. "at least 10"), else None. `result=False`: the field does not
    change what is computed (left out of cache keys)."""
    meta = {"help": help, "flag": flag, "type": type, "choices": choices, "metavar": metavar,
            "check": check, "result": result}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def _fields(cls, names: Sequence[str] | None):
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    if names is None:
        return [f for f in by_name.values() if f.metadata.get("flag")]
    chosen = [by_name[n] for n in names]
    missing = [f.name for f in chosen if not f.metadata.get("flag")]
    if missing:
        raise TypeError(f"{cls.__name__}: no command-line flag for {missing}")
    return chosen


def _default(f) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_options(parser, cls, names: Sequence[str] | None = None,
                help: dict[str, str] | None = None) -> None:
    """argparse arguments for the named fields of `cls` (all that have a flag when None); `help`
    replaces a field's help text for this CLI."""
    for f in _fields(cls, names):
        m = f.metadata
        text = (help or {}).get(f.name, m["help"])
        default = _default(f)
        if default is not None and "default" not in text:   # the help names it itself
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            text += f" (default {shown})"
        kwargs = {"dest": f.name, "default": None, "help": text}
        for key in ("type", "choices", "metavar"):
            if m[key] is not None:
                kwargs[key] = m[key]
        parser.add_argument(m["flag"], **kwargs)


def check_fields(obj, names: Sequence[str] | None = None) -> None:
    """Raise OptionError for the first field (of `names`, else all with a check) whose value its
    check refuses."""
    for f in dataclasses.fields(obj):
        if names is not None and f.name not in names:
            continue
        check = f.metadata.get("check")
        value = getattr(obj, f.name)
        if check is not None and value is not None:
            expected = check(value)
            if expected:
                flag = f.metadata.get("flag") or f.name
                shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
                raise OptionError(f"{flag} {shown}: expected {expected}")


def from_args(cls, args, names: Sequence[str] | None = None, **values):
    """An instance of `cls` from parsed arguments: each flag of `names` (default: every field
    with a flag) that the parser has and that was given, checked; the rest keep their defaults;
    `values` are set as they are (nested settings, derived values)."""
    given = {f.name: getattr(args, f.name) for f in _fields(cls, names)
             if getattr(args, f.name, None) is not None}
    obj = cls(**{**given, **values})
    check_fields(obj, [name for name in given if name not in values])
    return obj


def result_fields(obj) -> dict:
    """The fields of a settings dataclass that change a result (nested dataclasses recursed),
    as plain JSON-able values: what a cache key hashes."""
    out = {}
    for f in dataclasses.fields(obj):
        if not f.metadata.get("result", True):
            continue
        value = getattr(obj, f.name)
        out[f.name] = result_fields(value) if dataclasses.is_dataclass(value) else \
            (list(value) if isinstance(value, tuple) else value)
    return out


def at_least(low) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"at least {low}"


def within(low, high, unit: str = "") -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"{low}..{high}{unit}"
