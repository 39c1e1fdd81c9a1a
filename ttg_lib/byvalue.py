"""Functions by value: a notebook cell's function, a lambda, a closure, a ``functools.partial``
or a function of a module only this machine has, shipped to the workers with the run.

The function is pickled with cloudpickle once per run. Its module travels by value too where
the workers may not have it: ``__main__`` always (cloudpickle's own rule), and any module
that is not part of the standard library, of TTG, or of an installed distribution (a
``mymodel.py`` in the working directory, a package of the project not ``pip install``-ed).
Modules of installed distributions (numpy, your own package installed with ``pip install
-e .``) travel by name: every host has them, and they stay small.

The payload is fingerprinted (sha256) and stored once on the broker under that fingerprint
(:class:`ttg_lib.backends.StoresBlobs`) and in the run's record (``function.pkl``); a task
names it as ``sha256:<hex>``, and a worker loads it once, after checking the bytes against
the fingerprint (:func:`resolve`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from types import CodeType, FunctionType, ModuleType
from typing import Any

from . import compute
from .compute import ComputeFn, Fetch
from .errors import ComputeImportError, ConfigError, RunError

PREFIX = "sha256:"
LIMIT_BYTES = 64 << 20  # brokers carry it, every worker reads it: beyond this, import it
RECORD_FILE = "function.pkl"


@dataclass(frozen=True)
class ShippedFunction:
    """A function's pickle and its fingerprint: what the broker and the record keep."""

    name: str  # "module:qualname", for people (the record's ``compute``)
    payload: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def ref(self) -> str:
        """What a task carries instead of an import path."""
        return PREFIX + self.sha256

    @classmethod
    def of(cls, fn: Callable[..., Any], name: str | None = None) -> ShippedFunction:
        """Pickle ``fn`` by value; a payload over LIMIT_BYTES is one clear error."""
        name = name or display_name(fn)
        payload = pickle_by_value(fn, name)
        if len(payload) > LIMIT_BYTES:
            raise ConfigError(
                "compute", name,
                f"a function that pickles to at most {LIMIT_BYTES >> 20} MiB; this one is "
                f"{len(payload) / (1 << 20):,.0f} MiB, most likely data it captures (a closure "
                f"over a big array). Put the function in an importable module that loads its "
                f"data itself, install it on every host (pip install -e .), and pass "
                f"'module:function'")
        return cls(name, payload)

    def save(self, record_dir: Path) -> None:
        (Path(record_dir) / RECORD_FILE).write_bytes(self.payload)

    @classmethod
    def from_record(cls, record_dir: Path, name: str, sha256: str) -> ShippedFunction:
        """A resumed run's function, from its record (checked against its fingerprint)."""
        path = Path(record_dir) / RECORD_FILE
        try:
            shipped = cls(name, path.read_bytes())
        except FileNotFoundError:
            raise RunError(f"the run's function was shipped by value and its record has no "
                           f"{RECORD_FILE} ({path})") from None
        if shipped.sha256 != sha256:
            raise RunError(f"{path} is not the run's function: its sha256 is "
                           f"{shipped.sha256[:12]}..., the run's {sha256[:12]}...")
        return shipped


def is_ref(ref: str) -> bool:
    return ref.startswith(PREFIX)


def display_name(fn: Callable[..., Any]) -> str:
    """``module:qualname`` (a partial names its function), with no second colon."""
    inner = fn.func if isinstance(fn, partial) else fn
    module = getattr(inner, "__module__", None) or "__main__"
    qualname = getattr(inner, "__qualname__", None) or type(inner).__name__
    if isinstance(fn, partial):
        qualname = f"partial({qualname})"
    return f"{module}:{qualname.replace(':', '_')}"[:200]


def pickle_by_value(fn: Callable[..., Any], name: str) -> bytes:
    """cloudpickle ``fn``, with its module by value where workers may not import it."""
    import cloudpickle

    module = _module_of(fn)
    top = None  # the package to ship by value (cloudpickle ships __main__ by value itself)
    if (module is not None and module.__name__ != "__main__"
            and not importable_everywhere(module.__name__)):
        top = sys.modules.get(module.__name__.partition(".")[0])
    if top is not None:
        cloudpickle.register_pickle_by_value(top)
    try:
        return cloudpickle.dumps(Located.of(fn))
    except Exception as exc:  # whatever the function holds that does not pickle
        raise ConfigError("compute", name, f"a function that pickles, with what it captures "
                                           f"({type(exc).__name__}: {exc})") from None
    finally:
        if top is not None:
            cloudpickle.unregister_pickle_by_value(top)


def unpickle(payload: bytes, sha256: str, ref: str) -> Callable[..., Any]:
    """The function in ``payload``, once its bytes match the fingerprint the task names."""
    import pickle

    if hashlib.sha256(payload).hexdigest() != sha256:
        raise ComputeImportError(ref, "the function stored on the broker does not match its "
                                      "sha256 fingerprint")
    try:
        fn = pickle.loads(payload)  # noqa: S301 - the run's own function, fingerprint-checked
        fn = fn.function() if isinstance(fn, Located) else fn  # (older records: bare)
    except Exception as exc:  # a module the function needs is not installed here
        raise ComputeImportError(ref, f"the function shipped by value does not load on this "
                                      f"worker ({type(exc).__name__}: {exc}); install what it "
                                      f"imports on this host") from None
    if not callable(fn):
        raise ComputeImportError(ref, "the payload is not a callable")
    return fn


DYNAMIC = "<dynamic-code>"  # cloudpickle's file name for every code object it ships


@dataclass(frozen=True)
class Located:
    """A function shipped by value, with the source file of its module. cloudpickle names
    every line it ships ``<dynamic-code>`` (so payloads do not depend on paths); the worker
    puts the file back, so a failed point's traceback says where, with the line itself
    wherever the file is readable (this machine, a shared file system)."""

    fn: Callable[..., Any]
    module: str
    file: str

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> Any:
        inner = fn.func if isinstance(fn, partial) else fn
        code, module = getattr(inner, "__code__", None), getattr(inner, "__module__", None)
        if code is None or not module or code.co_filename.startswith("<"):
            return fn  # a builtin, a callable object, code typed at a prompt: as it is
        return cls(fn, module, code.co_filename)

    def function(self) -> Callable[..., Any]:
        """The function, its code (and its module's other functions') named by file."""
        inner = self.fn.func if isinstance(self.fn, partial) else self.fn
        for candidate in [inner, *getattr(inner, "__globals__", {}).values()]:
            if (isinstance(candidate, FunctionType) and candidate.__module__ == self.module
                    and candidate.__code__.co_filename == DYNAMIC):
                candidate.__code__ = _named(candidate.__code__, self.file)
        return self.fn


def _named(code: CodeType, file: str) -> CodeType:
    """``code`` and the code nested in it (lambdas, inner functions) named ``file``."""
    consts = tuple(_named(c, file) if isinstance(c, CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=file, co_consts=consts)


def should_ship(fn: Callable[..., Any]) -> bool:
    """By value unless workers can import ``fn`` by name: a top-level function of a module
    from the standard library, TTG or an installed distribution."""
    module = _module_of(fn)
    if module is None or isinstance(fn, partial):
        return True
    qualname = getattr(fn, "__qualname__", "")
    if "<" in qualname or "." in qualname or getattr(module, qualname, None) is not fn:
        return True  # a lambda, a closure, a method: no import path reaches it
    return not importable_everywhere(module.__name__)


def import_path(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def importable_everywhere(module_name: str) -> bool:
    """Part of the standard library, TTG, or an installed distribution: every host has it
    (with ``pip install ttg`` and the function's dependencies)."""
    top = module_name.partition(".")[0]
    if top == "__main__":
        return False
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "ttg_lib":
        return True
    if top in _installed_packages():
        return True
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    return bool(path) and any(Path(path).resolve().is_relative_to(site)
                              for site in _site_dirs())


@lru_cache(maxsize=1)
def _installed_packages() -> frozenset[str]:
    return frozenset(importlib.metadata.packages_distributions())


@lru_cache(maxsize=1)
def _site_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple({Path(paths[k]).resolve() for k in ("purelib", "platlib") if k in paths})


def _module_of(fn: Callable[..., Any]) -> ModuleType | None:
    inner = fn.func if isinstance(fn, partial) else fn
    return sys.modules.get(getattr(inner, "__module__", None) or "")


def for_run(config: Any, function: Callable[..., Any] | None = None
            ) -> tuple[Callable[..., Any], ShippedFunction | None]:
    """A run's function and, when it travels by value, its payload: ``function`` as given
    (the Python API), a resumed run's from its record, or ``config.compute`` imported here
    and shipped by value when workers may not import it (see the module docstring)."""
    if function is not None:
        shipped = ShippedFunction.of(function, config.compute)
        return function, shipped
    if config.compute_sha256:
        shipped = ShippedFunction.from_record(config.record_dir, config.compute,
                                              config.compute_sha256)
        return unpickle(shipped.payload, shipped.sha256, shipped.ref), shipped
    fn = compute.load(config.compute)
    if importable_everywhere(config.compute.partition(":")[0]):
        return fn, None
    return fn, ShippedFunction.of(fn, config.compute)


def resolve(ref: str, fetch: Fetch | None = None) -> ComputeFn:
    """The function a task names: an import path ``module:function``
    (:func:`ttg_lib.compute.load`), or ``sha256:<hex>``, a function shipped by value whose
    payload ``fetch`` gets from the broker; loaded once per process, checked against its
    fingerprint. The one entry point every worker (and its compute child) loads a function
    through."""
    if not is_ref(ref):
        return compute.load(ref)
    fn = _by_value.get(ref)
    if fn is None:
        if fetch is None:
            raise ComputeImportError(ref, "a broker to fetch a function shipped by value from")
        payload = fetch(ref[len(PREFIX):])
        if payload is None:
            raise ComputeImportError(ref, "a function stored on the broker: its run stored none "
                                          "(the run is over, or the broker lost it)")
        fn = unpickle(payload, ref[len(PREFIX):], ref)
        if len(_by_value) >= 8:
            _by_value.clear()
        _by_value[ref] = fn
    return fn


_by_value: dict[str, ComputeFn] = {}
