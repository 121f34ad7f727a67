"""Frozen dataclass instances built without a Python call per field.

A frozen dataclass's generated ``__init__`` stores each field with ``object.__setattr__`` (its own
``__setattr__`` refuses), about a quarter of a microsecond a field; a cold DCAP verification
builds a dozen such objects, some 120 fields (the quote and its two report bodies, the PCK's SGX
extension, the TCB info and QE identity, the chain's certificates, the claims), which measured
about 25 us of it. The native ``_frozen.Builder`` stores the values in the instance's slots in one
call: the same class, the same fields, still frozen (``__setattr__`` still refuses), equal and of
the same hash as the class's own construction. The class itself is the reference, used when the
module is not built (``NATIVE``); tests/evidence/sgx/test_frozen.py compares the two on every class
built this way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

_Builder: Callable[[type, tuple[str, ...]], Callable[..., Any]] | None
try:
    from floodlight_trust.evidence import _frozen
except ImportError:  # not built (an install without a C compiler): the classes themselves
    _Builder, NATIVE = None, False
else:
    _Builder, NATIVE = _frozen.Builder, True


def eligible(cls: type) -> bool:
    """Does ``cls``'s ``__init__`` only store its fields, each in a slot of its own? (A frozen
    dataclass with slots, without ``__post_init__``, every field an ``__init__`` parameter.)"""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        return False
    params = cls.__dict__.get("__dataclass_params__")
    if params is None or not params.frozen or hasattr(cls, "__post_init__"):
        return False
    fields = dataclasses.fields(cls)
    return all(f.init for f in fields) and len(fields) == len(cls.__dict__["__slots__"])


def builder(cls: type[_T]) -> Callable[..., _T]:
    """A callable that takes every field of ``cls`` positionally, in order (defaults included),
    and gives what ``cls(*values)`` gives: the native builder when ``cls`` is :func:`eligible` and
    the module is built, else ``cls`` itself."""
    if _Builder is None or not eligible(cls):
        return cls
    build: Callable[..., _T] = _Builder(cls, tuple(f.name for f in dataclasses.fields(cls)))  # type: ignore[arg-type]
    return build


def fields_of(value: Any) -> tuple[Any, ...]:
    """The field values of a dataclass instance, in order (what its builder takes)."""
    return tuple(getattr(value, f.name) for f in dataclasses.fields(value))
