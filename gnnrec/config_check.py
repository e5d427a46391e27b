"""Every config value checked against the type its consumer declares, before any work.

A node with a ``_target_`` is checked against the target's signature: each key it gives
must be a parameter (unless the target takes ``**kwargs``) and its value must fit the
parameter's type hint. A node consumed as keyword arguments of a function
(``data.split``, ``data.preprocess``) is checked against that function; the remaining
keys without a target (the top level of ``conf/train.yaml``, ``data.text``, ...) against
:data:`SCHEMA`. Interpolations are resolved first; a value that is a plain reference to
another key (``trainer.device: ${device}``) is reported under the key the user sets.

Type hints understood: ``int``, ``float`` (an integer is accepted), ``bool``, ``str``,
:class:`~pathlib.Path` (a string), ``None``, unions, ``Literal``, ``Annotated[...,
AtLeast(n)]``, sequences (``list``, ``tuple``, ``Sequence``; a string is not a list) and
mappings, with their element types. Hints a config cannot give a value for (tensors,
graphs, callables) are not checked. Errors read ``trainer.max_epochs=abc: expected an
integer``; several are joined by ``"; "`` in one :class:`~gnnrec.errors.ConfigError`.
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union

from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf

from gnnrec.data.preprocess import preprocess
from gnnrec.data.split import split_interactions
from gnnrec.errors import ConfigError
from gnnrec.models.base import TrainingData

__all__ = ["AtLeast", "FUNCTIONS", "SCHEMA", "check_types", "mismatch", "user_key"]


@dataclass(frozen=True)
class AtLeast:
    """``Annotated[int, AtLeast(1)]``: the value must be ``>= bound``."""

    bound: float


SCHEMA: dict[str, Any] = {
    "task_name": str,
    "seed": int,
    "deterministic": bool,
    "device": str,
    "optimized_metric": str | None,
    "test_curve_every": Annotated[int, AtLeast(0)],
    "overwrite": bool,
    "paths.root_dir": str,
    "paths.data_dir": str,
    "paths.cache_dir": str,
    "paths.log_dir": str,
    "data.name": str,
    "data.target_domain": str | None,
    "data.source_edges": bool,
    "data.zero_shot_domain": str | None,
    "data.text.template": str,
    "data.text.profile_items": Annotated[int, AtLeast(1)],
    "data.text.title_column": str,
}
"""Types of the keys that no ``_target_`` consumes (``paths.output_dir`` is Hydra's)."""

FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "data.preprocess": (preprocess, ("tables",)),
    "data.split": (split_interactions, ("data", "target_domain", "zero_shot")),
}
"""Nodes passed as keyword arguments: ``key -> (function, parameters the run sets)``."""

_META_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w\-]*(?:\.[A-Za-z_][\w\-]*)*)\}$")
_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def check_types(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` listing every value that does not fit its type.

    Args:
        cfg: A composed run config (``conf/train.yaml``); a ``hydra`` node is skipped.
    """
    errors = list(_node_errors(cfg, cfg, ""))
    if errors:
        raise ConfigError("; ".join(dict.fromkeys(errors)))


class _Unresolved(str):
    """The message of an interpolation that failed to resolve."""


def _node_errors(root: DictConfig, node: DictConfig, prefix: str) -> Iterator[str]:
    """Errors of ``node`` (at dotted ``prefix``) and of everything below it."""
    target = _target(node)
    if target is not None:
        yield from _call_errors(root, node, prefix, target)
        return
    for key in node:
        dotted = f"{prefix}{key}"
        if dotted == "hydra" or key in _META_KEYS:
            continue
        if dotted in SCHEMA:
            yield from _value_errors(root, node, key, dotted, SCHEMA[dotted])
            continue
        if not isinstance(node._get_node(key), DictConfig):
            continue  # consumed through a reference (data.path) or set by Hydra
        child = _resolved(root, node, key, dotted)
        if isinstance(child, _Unresolved):
            yield child
        elif isinstance(child, DictConfig) and dotted in FUNCTIONS:
            func, run_sets = FUNCTIONS[dotted]
            yield from _kwargs_errors(root, child, f"{dotted}.", func, run_sets)
        elif isinstance(child, DictConfig):
            yield from _node_errors(root, child, f"{dotted}.")


def _call_errors(root: DictConfig, node: DictConfig, prefix: str, target: Any) -> Iterator[str]:
    if not isinstance(target, str):
        yield f"{prefix}_target_={_show(target)}: expected a dotted class or function name"
        return
    try:
        func = get_method(target)
    except Exception as err:  # Hydra raises ImportError and others for a bad path
        reason = " ".join(str(err).split())
        yield f"{prefix}_target_={target}: cannot be imported ({reason})"
        return
    # A _partial_ model or sampler gets the training data's fields from the run.
    run_sets = tuple(TrainingData.field_names()) if _flag(node, "_partial_") else ()
    yield from _kwargs_errors(root, node, prefix, func, run_sets)


def _kwargs_errors(
    root: DictConfig,
    node: DictConfig,
    prefix: str,
    func: Callable[..., Any],
    run_sets: tuple[str, ...],
) -> Iterator[str]:
    """Errors of the keys of ``node`` as keyword arguments of ``func``."""
    params, hints = _signature(func)
    if params is None:
        return
    module = getattr(func, "__module__", "")
    name = f"{module}.{getattr(func, '__qualname__', func)}"
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    options = [
        k
        for k, p in params.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k not in run_sets
    ]
    for key in node:
        if key in _META_KEYS:
            continue
        dotted = f"{prefix}{key}"
        if key in run_sets:
            yield f"{dotted} is passed in by the run, not set in the config; remove it"
        elif key in options:
            yield from _value_errors(root, node, key, dotted, hints.get(key, Any))
        elif not takes_kwargs:
            yield f"{dotted}: {name} has no option {key!r}; its options: {', '.join(options)}"


def _value_errors(
    root: DictConfig, node: DictConfig, key: str, dotted: str, hint: Any
) -> Iterator[str]:
    value = _resolved(root, node, key, dotted)
    if isinstance(value, _Unresolved):
        yield value
        return
    if isinstance(value, DictConfig) and _target(value) is not None:
        yield from _node_errors(root, value, f"{dotted}.")  # instantiated recursively
        return
    name = user_key(root, node, key, dotted)
    if isinstance(value, DictConfig | ListConfig):
        try:
            value = OmegaConf.to_container(value, resolve=True)
        except Exception as err:  # a broken interpolation inside the list or mapping
            yield f"{dotted}: cannot be resolved: {str(err).splitlines()[0]}"
            return
    problem = mismatch(value, hint, name)
    if problem:
        yield f"{name}={_show(value)}: {problem}"


def _resolved(root: DictConfig, node: DictConfig, key: str, dotted: str) -> Any:
    """``node[key]`` with its interpolations resolved, or the :class:`_Unresolved` error."""
    try:
        return node[key]
    except Exception as err:  # OmegaConf raises several types for a broken interpolation
        raw = node._get_node(key)._value()
        reason = str(err).splitlines()[0]
        return _Unresolved(f"{dotted}={_show(raw)}: cannot be resolved: {reason}")


def _flag(node: DictConfig, key: str) -> bool:
    return key in node and node.get(key) is True


def _target(node: DictConfig) -> Any:
    """The node's ``_target_``, ``None`` when absent or null."""
    return node.get("_target_") if "_target_" in node else None


def user_key(root: DictConfig, node: DictConfig, key: str, dotted: str) -> str:
    """The key the user sets for ``node[key]``: the end of a chain of plain references.

    ``data.source.domains: ${data.domains}`` is reported as ``data.domains``; values
    computed by a resolver (``${oc.env:...}``) stay under their own key.
    """
    seen = {dotted}
    while True:
        child = node._get_node(key)
        raw = child._value() if child is not None else None
        match = _REFERENCE.match(raw) if isinstance(raw, str) else None
        if match is None:
            return dotted
        ref = match.group(1)
        parent, _, last = ref.rpartition(".")
        owner = OmegaConf.select(root, parent) if parent else root
        if ref in seen or not isinstance(owner, DictConfig) or last not in owner:
            return ref
        seen.add(ref)
        node, key, dotted = owner, last, ref


# ------------------------------------------------------------------------ type hints


def _signature(
    func: Callable[..., Any],
) -> tuple[Mapping[str, inspect.Parameter] | None, dict[str, Any]]:
    """Parameters and resolvable type hints of ``func`` (of a class: its ``__init__``).

    The parameters are ``None`` when the signature is unknown (some builtins).
    """
    target = func.__init__ if isinstance(func, type) else func
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return None, {}
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # a hint naming a type imported only for type checkers
        hints = {}
        namespace = getattr(inspect.getmodule(target), "__dict__", {})
        for name, annotation in getattr(target, "__annotations__", {}).items():
            if not isinstance(annotation, str):
                hints[name] = annotation
                continue
            try:
                hints[name] = eval(annotation, dict(namespace))  # the module's own names
            except Exception:
                continue
    return params, hints


def mismatch(value: Any, hint: Any, key: str = "key") -> str | None:
    """``None`` if ``value`` fits ``hint``, else ``"expected ..."`` saying what would.

    ``key`` names the setting in the hint of how to write it (``key=[books]``).
    """
    if _fits(value, hint):
        return None
    message = f"expected {_describe(hint)}"
    if isinstance(value, int | float) and not isinstance(value, bool) and _accepts(hint, str):
        message += f"; quote a number to pass it as text: {key}='{_show(value)}'"
    elif _is_scalar(value) and _sequence_hint(hint) is not None:
        message += f"; write a list: {key}=[{_show(value)}]"
    return message


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any or hint is inspect.Parameter.empty or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        if not _fits(value, args[0]):
            return False
        return all(
            value >= m.bound
            for m in hint.__metadata__
            if isinstance(m, AtLeast) and value is not None
        )
    if origin is Union or origin is types.UnionType:
        known = [arg for arg in args if _checkable(arg)]
        return not known or any(_fits(value, arg) for arg in known)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if value is None:
        return False
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type) and issubclass(hint, PurePath | os.PathLike):
        return isinstance(value, str | PurePath)
    container = origin or hint
    if container in _SEQUENCES:
        if not isinstance(value, ListConfig | list | tuple):
            return False
        if container is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(
                _fits(v, a) for v, a in zip(value, args, strict=True)
            )
        item = args[0] if args else Any
        return all(_fits(v, item) for v in value)
    if container in _MAPPINGS:
        if not isinstance(value, DictConfig | dict):
            return False
        key_hint, item_hint = args if len(args) == 2 else (Any, Any)
        return all(_fits(k, key_hint) and _fits(v, item_hint) for k, v in value.items())
    return True  # tensors, graphs, callables: nothing a config gives


def _checkable(hint: Any) -> bool:
    """Whether a config value can be judged against ``hint`` (not a tensor or a graph)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        return any(_checkable(a) for a in args)
    if origin is Annotated:
        return _checkable(args[0])
    if origin is Literal or hint in _NAMES or hint is None:
        return True
    if isinstance(hint, type) and issubclass(hint, PurePath | os.PathLike):
        return True
    return (origin or hint) in _SEQUENCES + _MAPPINGS


def _accepts(hint: Any, kind: type) -> bool:
    """Whether ``hint`` is or contains ``kind`` (through unions and ``Annotated``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        return any(_accepts(a, kind) for a in args)
    if origin is Annotated:
        return _accepts(args[0], kind)
    if origin is Literal:
        return any(isinstance(a, kind) for a in args)
    return hint is kind


def _sequence_hint(hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        found = [s for a in args if (s := _sequence_hint(a)) is not None]
        return found[0] if found else None
    return hint if (origin or hint) in _SEQUENCES else None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


_NAMES = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "true/false values"),
    str: ("a string", "strings"),
    type(None): ("null", "nulls"),
}


def _describe(hint: Any, plural: bool = False) -> str:
    """``"an integer"``, ``"a list of strings"``, ``"one of 'mlp', 'linear'"``, ..."""
    if hint is None:
        hint = type(None)
    if hint in _NAMES:
        return _NAMES[hint][plural]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        bounds = [m.bound for m in hint.__metadata__ if isinstance(m, AtLeast)]
        text = _describe(args[0], plural)
        return f"{text} >= {_show(bounds[0])}" if bounds else text
    if origin is Union or origin is types.UnionType:
        parts = []
        for arg in (a for a in args if _checkable(a)):
            if typing.get_origin(arg) is Literal:  # choices inline: true, false or 'auto'
                parts += [_choice(a) for a in typing.get_args(arg)]
            elif arg is bool and not plural:
                parts += ["true", "false"]
            else:
                parts.append(_describe(arg, plural))
        if float in args:
            parts = [p for p in parts if p != _NAMES[int][plural]]
        parts = list(dict.fromkeys(parts))
        return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"
    if origin is Literal:
        choices = ", ".join(_choice(a) for a in args)
        return f"values of {choices}" if plural else f"one of {choices}"
    if isinstance(hint, type) and issubclass(hint, PurePath | os.PathLike):
        return "paths" if plural else "a path"
    container = origin or hint
    if container in _SEQUENCES:
        item = args[0] if args and (container is not tuple or args[-1] is Ellipsis) else None
        if container is tuple and args and args[-1] is not Ellipsis:
            inner = ", ".join(_describe(a) for a in args)
            return (
                f"lists of {len(args)} ({inner})" if plural else f"a list of {len(args)} ({inner})"
            )
        inner = f" of {_describe(item, plural=True)}" if item not in (None, Any) else ""
        return f"lists{inner}" if plural else f"a list{inner}"
    if container in _MAPPINGS:
        inner = f" to {_describe(args[1], plural=True)}" if len(args) == 2 else ""
        return f"mappings{inner}" if plural else f"a mapping{inner}"
    name = getattr(hint, "__name__", str(hint))
    return f"{name} values" if plural else f"a {name}"


def _choice(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _show(value)


def _show(value: Any) -> str:
    """``value`` as an override would write it: ``abc``, ``null``, ``[10,x]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value and value.strip() == value else repr(value)
    if isinstance(value, ListConfig | list | tuple):
        return "[" + ",".join(_show(v) for v in value) + "]"
    if isinstance(value, DictConfig | dict):
        return "{" + ",".join(f"{k}:{_show(v)}" for k, v in value.items()) + "}"
    return str(value)
