"""Settings declared once: a dataclass field carries its flag, variable, help and checks.

A settings class is a frozen dataclass whose fields are built with :func:`setting` (or
:func:`switch`). The field holds the type and the default; its metadata holds the rest.
Everything else reads the declarations: :func:`add_arguments` (argparse), :func:`load`
(variables and flags, errors naming the one at fault), :func:`validate` (a class's
``__post_init__``) and :func:`markdown_table` (the configuration reference).

Checks raise ``ValueError`` with a reason only ("must be >= 1"); the loader knows which
variable or flag the value came from and puts its name in front. No message is ever parsed.

Generic on purpose: ``voxgate serve`` (voxgate.config) and the embedded upstream
(voxgate_dev.options) both use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

T = TypeVar("T")
_KEY = "voxgate.setting"


class ConfigError(ValueError):
    """A setting is invalid. ``source`` is the variable or flag at fault, ``reason`` what is wrong."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class Invalid(ValueError):
    """A value breaks a check; ``field`` names the settings field, for the loader to name its source."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """One declared setting. ``name`` and ``flag`` are filled in from the field by :func:`declarations`."""

    name: str
    default: object
    parse: Callable[[str], object]
    """Text to value (normalising it); raises ``ValueError`` with a reason."""
    check: Callable[[Any], None] | None
    """Raises ``ValueError`` with a reason when a (non-None) value is out of range."""
    help: str
    env: str | None
    flag: str
    metavar: str | None
    """None for a switch: a flag without a value."""
    default_text: str | None
    """How the default reads in help and docs when ``str(default)`` would not say it."""

    @property
    def shown_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        return "unset" if self.default is None else str(self.default)


def setting(
    default: T,
    parse: Callable[[str], T],
    help: str,
    *,
    check: Callable[[Any], None] | None = None,
    env: str | None = None,
    flag: str | None = None,
    metavar: str = "VALUE",
    default_text: str | None = None,
    repr: bool = True,
) -> T:
    """A dataclass field declaring one setting. ``flag`` defaults to ``--field-name``."""
    spec = Setting("", default, parse, check, help, env, flag or "", metavar, default_text)
    # dataclasses.field is typed to return the field's type, which is what the class body needs.
    return dataclasses.field(default=default, repr=repr, metadata={_KEY: spec})


def switch(help: str, *, flag: str | None = None, env: str | None = None) -> bool:
    """A boolean setting, off by default; its flag takes no value."""
    spec = Setting("", False, boolean, None, help, env, flag or "", None, "off")
    return dataclasses.field(default=False, metadata={_KEY: spec})


@cache
def declarations(cls: Hashable) -> tuple[Setting, ...]:
    """The declared settings of a dataclass, in field order (fields without a declaration skipped)."""
    out = []
    for field in dataclasses.fields(cast(type, cls)):
        spec = field.metadata.get(_KEY)
        if isinstance(spec, Setting):
            flag = spec.flag or "--" + field.name.replace("_", "-")
            out.append(dataclasses.replace(spec, name=field.name, flag=flag))
    return tuple(out)


def validate(obj: object) -> None:
    """Run every declared check on ``obj``'s values; raises :class:`Invalid` naming the field."""
    for spec in declarations(cast(Hashable, type(obj))):
        value = getattr(obj, spec.name)
        if value is not None and spec.check is not None:
            try:
                spec.check(value)
            except ValueError as exc:
                raise Invalid(spec.name, str(exc)) from None


def load(
    cls: Callable[..., T],
    environ: Mapping[str, str],
    flags: Mapping[str, str | None] | None = None,
    **fixed: object,
) -> T:
    """Build ``cls`` from ``environ`` overridden by non-None ``flags`` (keyed by field), plus ``fixed``.

    Raises :class:`ConfigError` naming the variable or flag at fault; for a check that spans
    several settings (an :class:`Invalid` from ``cls``), the one the check names.
    """
    flags = flags or {}
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for spec in declarations(cast(type, cls)):
        raw, source = flags.get(spec.name), spec.flag
        if raw is None and spec.env is not None:
            raw, source = environ.get(spec.env), spec.env
        sources[spec.name] = source if raw else spec.env or spec.flag
        if raw is None or raw == "":
            continue
        try:
            value = spec.parse(raw)
            if spec.check is not None:
                spec.check(value)
        except ValueError as exc:
            raise ConfigError(source, f"{exc} (got {raw!r})") from None
        values[spec.name] = value
    try:
        return cls(**values, **fixed)
    except Invalid as exc:
        raise ConfigError(sources.get(exc.field, exc.field), exc.reason) from None


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """One flag per declared setting. Values stay text (None when absent): :func:`load` parses them."""
    for spec in declarations(cls):
        where = f"; ${spec.env}" if spec.env else ""
        help_text = f"{spec.help} (default: {spec.shown_default}{where})".replace("%", "%%")
        if spec.metavar is None:
            parser.add_argument(spec.flag, dest=spec.name, action="store_const", const="true", help=help_text)
        else:
            parser.add_argument(spec.flag, dest=spec.name, metavar=spec.metavar, help=help_text)


def flags_from(args: argparse.Namespace, cls: type) -> dict[str, str | None]:
    """The raw flag values of ``cls``'s settings in parsed ``args`` (None: not given)."""
    return {spec.name: getattr(args, spec.name, None) for spec in declarations(cls)}


def markdown_table(specs: Iterable[Setting], extra_rows: Sequence[tuple[str, str, str, str]] = ()) -> str:
    """A Markdown table: variable, flag, default, meaning. ``extra_rows`` come first, as given."""
    rows = [
        "| Variable | Flag | Default | Meaning |",
        "|---|---|---|---|",
        *(_row(*row) for row in extra_rows),
    ]
    for spec in specs:
        default = spec.default_text if spec.default_text is not None else f"`{spec.default}`"
        rows.append(_row(f"`{spec.env}`" if spec.env else "—", f"`{spec.flag}`", default, spec.help))
    return "\n".join(rows) + "\n"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


TABLE_BEGIN = "<!-- BEGIN generated table -->"
TABLE_END = "<!-- END generated table -->"


def with_table(document: str, table: str) -> str:
    """``document`` with the text between :data:`TABLE_BEGIN` and :data:`TABLE_END` replaced by ``table``."""
    before, begin, rest = document.partition(TABLE_BEGIN)
    _, end, after = rest.partition(TABLE_END)
    if not (begin and end):
        raise ValueError(f"markers not found: {TABLE_BEGIN} ... {TABLE_END}")
    return f"{before}{TABLE_BEGIN}\n{table}{TABLE_END}{after}"


def table_main(prog: str, table: str, argv: Sequence[str]) -> int:
    """``--markdown`` prints ``table``; ``--write FILE`` puts it between FILE's markers."""
    parser = argparse.ArgumentParser(prog=prog, description="The settings reference, as a Markdown table.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="print the table")
    what.add_argument("--write", metavar="FILE", type=Path, help="rewrite the table between FILE's markers")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(table)
    else:
        args.write.write_text(with_table(args.write.read_text(), table))
    return 0


# --- parsers and checks shared by every settings class -------------------------------------


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be an integer") from None


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def text(value: str) -> str:
    return value


def stripped(value: str) -> str:
    return value.strip()


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def at_least(low: float) -> Callable[[float], None]:
    def check(value: float) -> None:
        if not value >= low:
            raise ValueError(f"must be >= {low:g}")

    return check


def above(low: float) -> Callable[[float], None]:
    def check(value: float) -> None:
        if not value > low:
            raise ValueError(f"must be > {low:g}")

    return check


def within(low: float, high: float) -> Callable[[float], None]:
    def check(value: float) -> None:
        if not low <= value <= high:
            raise ValueError(f"must be within [{low:g}, {high:g}]")

    return check


def one_of(*choices: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")

    return check


def non_empty(value: str) -> None:
    if not value:
        raise ValueError("must not be empty")
