"""The translator registry: Caffe type name -> translator function.

A translator is a plain function ::

    @translator("ReLU")
    def relu(node: Node, inputs: list[KerasTensor], ctx: TranslationContext) -> list[KerasTensor]:
        ...

It receives the layer (``node``: parameters in ``node.param``, canonical float32
weights in ``node.weights``), the Keras tensors of its bottoms (Keras layout, see
:mod:`caffe2tf.backend.layout`) and the :class:`TranslationContext`; it
returns one Keras tensor per top. Every Keras layer it creates must be named with
``ctx.layer_name(node, suffix)``.

Built-in translators live one family per module in :mod:`caffe2tf.backend.translators`,
loaded from the explicit list :data:`BUILTIN_MODULES`. Users add their own with :func:`load_plugin` (a Python
file they name on the command line) or by calling :func:`translator` directly;
those are kept apart from the built-ins and may replace one only with
``override=True``.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from caffe2tf.ir import Graph
from caffe2tf.errors import Caffe2TFError, UnsupportedLayerError
from caffe2tf.registry import RegistrationError, Registry

log = logging.getLogger(__name__)

Translator = Callable[..., list]  # (Node, list[KerasTensor], TranslationContext) -> list[KerasTensor]

#: Modules holding the built-in translators, imported once, in this order.
BUILTIN_MODULES: tuple[str, ...] = (
    "caffe2tf.backend.translators.io",
    "caffe2tf.backend.translators.conv",
    "caffe2tf.backend.translators.inner_product",
    "caffe2tf.backend.translators.pooling",
    "caffe2tf.backend.translators.activations",
    "caffe2tf.backend.translators.normalization",
    "caffe2tf.backend.translators.shape_ops",
    "caffe2tf.backend.translators.eltwise",
    "caffe2tf.backend.translators.interp",
    "caffe2tf.backend.translators.reductions",
    "caffe2tf.backend.translators.ssd",
    "caffe2tf.backend.translators.upsample",
)

#: Every translator: the built-ins (defined in :data:`BUILTIN_MODULES`) apart from user ones.
TRANSLATORS: Registry[Translator] = Registry("translator", builtin_modules=BUILTIN_MODULES,
                                             is_builtin=lambda fn: getattr(fn, "__module__", None) in BUILTIN_MODULES)


def translator(*types: str, override: bool = False) -> Callable[[Translator], Translator]:
    """Register the decorated function as the translator of the Caffe ``types``.

    Functions defined in :data:`BUILTIN_MODULES` are built-ins; any other is a
    user translator. Registering a type twice raises :class:`RegistrationError`
    unless ``override=True`` (a user translator may then replace a built-in one).
    """
    return TRANSLATORS.decorator(*types, override=override)


def load_builtins() -> None:
    """Import the built-in translator modules (once)."""
    TRANSLATORS.load_builtins()


def get_translator(layer_type: str) -> Translator:
    """The translator of ``layer_type`` (a user one first); ``KeyError`` if none."""
    return TRANSLATORS[layer_type]


def is_supported(layer_type: str) -> bool:
    return layer_type in TRANSLATORS


def supported_types(*, include_user: bool = True) -> list[str]:
    """Sorted Caffe types with a translator (for docs and ``--help``)."""
    return TRANSLATORS.types(include_user=include_user)


def builtin_translators() -> dict[str, Translator]:
    return TRANSLATORS.builtins()


def unregister(layer_type: str) -> None:
    """Remove a user translator (tests and plug-in reloading)."""
    TRANSLATORS.unregister(layer_type)


def check_supported(graph: Graph) -> None:
    """Raise one :class:`UnsupportedLayerError` listing every unsupported type of
    ``graph`` with its layers."""
    missing: dict[str, list[str]] = {}
    for node in graph.nodes:
        if not is_supported(node.type):
            missing.setdefault(node.type, []).append(node.name)
    if not missing:
        return
    parts = []
    for t, names in sorted(missing.items()):
        shown = ", ".join(f"'{n}'" for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        parts.append(f"{t} ({len(names)} layer{'s' if len(names) > 1 else ''}: {shown})")
    raise UnsupportedLayerError(
        f"{len(missing)} unsupported layer type{'s' if len(missing) > 1 else ''}: " + "; ".join(parts)
        + ". Write a translator for each and pass it with --plugin FILE.py "
        "(see docs/adding_a_layer.md)", file=graph.source)


def load_plugin(path: str | Path) -> list[str]:
    """Import the user's translator module ``path`` (a ``.py`` file named by the user,
    never by a model file); return the Caffe types it registered."""
    p = Path(path)
    if not p.is_file() or p.suffix != ".py":
        raise Caffe2TFError(f"plug-in '{p}' is not a .py file", file=str(p))
    load_builtins()
    before = TRANSLATORS.users()
    mod_name = f"caffe2tf_plugin_{abs(hash(str(p.resolve())))}_{p.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:
        raise Caffe2TFError(f"cannot import plug-in '{p}'", file=str(p))
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Caffe2TFError:
        sys.modules.pop(mod_name, None)
        raise
    except Exception as exc:  # the user's code: report it as bad input
        sys.modules.pop(mod_name, None)
        raise Caffe2TFError(f"plug-in '{p}' failed to import: {type(exc).__name__}: {exc}", file=str(p)) from exc
    added = sorted(t for t, fn in TRANSLATORS.users().items() if before.get(t) is not fn)
    if not added:
        log.warning("plug-in %s registered no translator", p)
    return added


def load_plugins(paths: Iterable[str | Path]) -> list[str]:
    out: list[str] = []
    for p in paths:
        out.extend(load_plugin(p))
    return out


def describe(layer_type: str) -> dict[str, Any]:
    """Where the translator of ``layer_type`` comes from (for docs)."""
    fn = get_translator(layer_type)
    doc = (fn.__doc__ or "").strip().splitlines()
    return {"type": layer_type, "module": fn.__module__, "function": fn.__name__,
            "summary": doc[0] if doc else "", "user": TRANSLATORS.is_user(layer_type)}


def builtin_types_declared() -> set[str]:
    """The Caffe types the built-in modules register, read from their source (the
    literal arguments of every ``translator(...)`` call, as decorator or not) without
    importing them, so that ``inspect`` can say what converts without loading
    TensorFlow. ``tests/backend/test_registry.py`` checks it equals the loaded
    registry."""
    import ast

    declared: set[str] = set()
    for name in BUILTIN_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        for call in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
            if isinstance(call, ast.Call) and "translator" in (getattr(call.func, "id", None),
                                                               getattr(call.func, "attr", None)):
                declared.update(a.value for a in call.args
                                if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return declared
