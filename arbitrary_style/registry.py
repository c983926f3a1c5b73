"""One lookup for every part chosen by name in a config (model, trunk, loss net, data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(what: str, name: str, table: Mapping[str, T]) -> T:
    """Returns ``table[name]``; an unknown name raises with the valid ones listed.

    Args:
      what: the option's name as the user writes it, e.g. 'config.loss.network'.
      name: the value given.
      table: valid names and what they select.
    """
    try:
        return table[name]
    except KeyError:
        raise ValueError(
            f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}"
        ) from None
