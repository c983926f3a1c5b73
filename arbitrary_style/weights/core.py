"""Loading named arrays into NNX modules through a table, with strict checks.

Every reader in this package turns a published file into ``{name: array}``
with TF-Slim names and TF layouts (HWIO kernels), then hands it to
``load_into`` with a ``NameTable``: an ordered list of (file prefix, module
prefix) rules and the patterns of variables we knowingly do not use. Because
NNX module paths equal the reference variable scopes (models/layers.py), a
module's expected names are ``layers.checkpoint_path`` of its state paths and
no converter needs per-layer code.

A file that does not fit fails with one message listing every missing,
unexpected and mis-shaped name; skipped variables are counted in the report.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from arbitrary_style.models.layers import checkpoint_path

# How many names of each kind an error message lists before summarising.
_LIST_LIMIT = 40


class WeightsError(ValueError):
    """A weight file cannot be read or does not fit the model."""


class WeightsFormatError(WeightsError):
    """The file is not what it claims to be (truncated, wrong format, unsafe)."""


class WeightsMismatchError(WeightsError):
    """The file's names or shapes do not match the model's."""


class WeightsIntegrityError(WeightsError):
    """The file's digest differs from its pinned or recorded one (changed or damaged)."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No file where the weights should be; the message says how to get them."""


@dataclasses.dataclass(frozen=True)
class NameTable:
    """How file names map onto a module's checkpoint-style names.

    Attributes:
      rules: (file prefix, module prefix) pairs tried in order; the first whose
        file prefix starts the name wins and is replaced by the module prefix.
        A name no rule matches is unexpected.
      skip: regular expressions (``re.search``) of variables the file may hold
        and we do not use (loss network inside a training checkpoint, Adam
        slots, global_step); they are counted, never loaded.
    """

    rules: tuple[tuple[str, str], ...]
    skip: tuple[str, ...] = ()

    def is_skipped(self, name: str) -> bool:
        return any(re.search(pattern, name) for pattern in self.skip)

    def target(self, name: str) -> str | None:
        for source, target in self.rules:
            if name.startswith(source):
                return target + name[len(source) :]
        return None


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """Names and shapes of a file's arrays, read lazily one at a time.

    Checkpoints can be large (Magenta's holds VGG and Adam slots next to the
    model), so shapes are checked before anything is read.
    """

    description: str
    shapes: Mapping[str, tuple[int, ...]]
    read: Callable[[str], np.ndarray]

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], description: str) -> WeightSource:
        arrays = dict(arrays)
        return cls(description, {k: tuple(np.shape(v)) for k, v in arrays.items()}, arrays.__getitem__)


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What ``load_into`` did."""

    source: str
    loaded: int
    skipped: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.source}: loaded {self.loaded} variables, skipped {len(self.skipped)} "
            "not used by this model"
        )


def module_variables(module: nnx.Module) -> dict[str, nnx.Variable]:
    """{checkpoint-style name: variable} of every variable under ``module``."""
    return {
        checkpoint_path(path): variable
        for path, variable in nnx.to_flat_state(nnx.state(module))
    }


def _shape_of(variable: nnx.Variable) -> tuple[int, ...]:
    return tuple(variable.get_value().shape)


def _listing(title: str, items: Iterable[str]) -> list[str]:
    items = list(items)
    if not items:
        return []
    lines = [f"  {title} ({len(items)}):"]
    lines += [f"    {item}" for item in items[:_LIST_LIMIT]]
    if len(items) > _LIST_LIMIT:
        lines.append(f"    ... and {len(items) - _LIST_LIMIT} more")
    return lines


def load_into(
    module: nnx.Module,
    source: WeightSource,
    table: NameTable,
    *,
    what: str = "model",
) -> LoadReport:
    """Checks ``source`` against ``module`` through ``table``, then assigns in place.

    Works on abstract modules (``nnx.eval_shape``) too: every variable receives
    a concrete array, since a missing one is an error.

    Raises:
      WeightsMismatchError: listing missing (the module has it, the file does
        not), unexpected (the file has it, no rule or no module variable) and
        mis-shaped names. Nothing is assigned in that case.
    """
    variables = module_variables(module)
    skipped, unexpected, targets = [], [], {}
    for name in sorted(source.shapes):
        if table.is_skipped(name):
            skipped.append(name)
            continue
        target = table.target(name)
        if target is None or target not in variables:
            unexpected.append(name)
            continue
        if target in targets:
            unexpected.append(f"{name} (a second source for {target})")
            continue
        targets[target] = name
    missing = sorted(set(variables) - set(targets))
    misshaped = [
        f"{name} -> {target}: file {tuple(source.shapes[name])}, {what} {_shape_of(variables[target])}"
        for target, name in sorted(targets.items())
        if tuple(source.shapes[name]) != _shape_of(variables[target])
    ]
    if missing or unexpected or misshaped:
        lines = [f"{source.description} does not fit the {what}:"]
        lines += _listing("missing from the file", missing)
        lines += _listing("unexpected in the file", unexpected)
        lines += _listing("mis-shaped", misshaped)
        raise WeightsMismatchError("\n".join(lines))
    for target, name in targets.items():
        variable = variables[target]
        array = np.asarray(source.read(name))
        variable.set_value(jnp.asarray(array, dtype=variable.get_value().dtype))
    return LoadReport(source.description, len(targets), tuple(skipped))
