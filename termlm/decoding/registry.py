"""Find, load and name the decoding plugins: built-ins, entry points, plugin folders.

Every source goes through the same loader. Failures never crash the host: a module that does not
import, a folder that cannot be read, a class that breaks the contract, or a name already taken is
kept as a ``PluginInfo`` with ``error`` set, and the other plugins still work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from termlm.decoding import hookspecs
from termlm.decoding.options import OptionSpec, check_values, merge_specs
from termlm.errors import PluginError

ENTRY_POINT_GROUP = "termlm.plugins"
ENV_DIRS = "TERMLM_PLUGINS_DIR"
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as found: ``kind`` is "strategy" or "processor" ("module"/"folder" for a
    source that failed before any plugin could be named)."""

    name: str
    kind: str
    source: str
    description: str = ""
    options: list[OptionSpec] = field(default_factory=list)
    error: str | None = None
    cls: type[Any] | None = field(default=None, compare=False, repr=False)


class PluginRegistry:
    """The plugins of one manager, in load order; the first of a name wins."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self._infos: list[PluginInfo] = []
        self._by_name: dict[str, PluginInfo] = {}

    # --- queries -------------------------------------------------------------------------------

    def infos(self) -> list[PluginInfo]:
        return list(self._infos)

    def strategy_names(self) -> list[str]:
        return [i.name for i in self._by_name.values() if i.kind == "strategy"]

    def processor_names(self) -> list[str]:
        return [i.name for i in self._by_name.values() if i.kind == "processor"]

    def strategy_class(self, name: str) -> type[Any]:
        info = self._by_name.get(name)
        if info is None or info.kind != "strategy" or info.cls is None:
            names = ", ".join(self.strategy_names()) or "(none loaded)"
            raise PluginError(
                f"unknown decoding strategy {name!r}",
                f"available strategies: {names} (see `termlm plugins`)",
            )
        return info.cls

    def processor_classes(self) -> list[type[Any]]:
        return [i.cls for i in self._by_name.values() if i.kind == "processor" and i.cls]

    def options_for(self, strategy: str) -> list[OptionSpec]:
        """The strategy's options, then every processor's (a name declared twice is listed once)."""
        cls = self.strategy_class(strategy)
        return merge_specs([cls.options, *(p.options for p in self.processor_classes())])

    def build(self, strategy: str, values: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        """The strategy and the processor chain, built with checked option values."""
        checked = validate_options(self, strategy, values)
        strat = _construct(self.strategy_class(strategy), checked)
        procs = [_construct(cls, checked) for cls in self.processor_classes()]
        return strat, procs

    # --- loading -------------------------------------------------------------------------------

    def add(self, cls: Any, source: str) -> None:
        """Record one registered class (the ``register`` callback)."""
        name = getattr(cls, "name", None)
        label = name if isinstance(name, str) and name else getattr(cls, "__name__", repr(cls))
        problem, kind = _contract_problem(cls)
        if problem is None and label in self._by_name:
            problem = f"name already taken by {self._by_name[label].source}"
        info = PluginInfo(
            name=label,
            kind=kind,
            source=source,
            description=str(getattr(cls, "description", "")),
            options=list(getattr(cls, "options", ()) or ()) if problem is None else [],
            error=problem,
            cls=cls if problem is None else None,
        )
        self._infos.append(info)
        if problem is None:
            self._by_name[label] = info

    def add_error(self, name: str, kind: str, source: str, error: str) -> None:
        self._infos.append(PluginInfo(name=name, kind=kind, source=source, error=error))


def validate_options(
    registry: PluginRegistry, strategy: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Every option of the strategy and the processors, coerced and checked, defaults filled in.

    Raises ``PluginError`` for an unknown strategy, an unknown key (listing the valid ones), a
    value of the wrong type or out of range (naming the allowed range), or a combination a
    plugin refuses.
    """
    specs = registry.options_for(strategy)
    checked = check_values(specs, values, f"strategy {strategy!r}")
    _construct(registry.strategy_class(strategy), checked)
    return checked


def _construct(cls: type[Any], values: Mapping[str, Any]) -> Any:
    kwargs = {spec.name: values[spec.name] for spec in cls.options}
    try:
        return cls(**kwargs)
    except PluginError:
        raise
    except (ValueError, TypeError) as exc:
        raise PluginError(f"{cls.name}: {exc}") from exc


def _contract_problem(cls: Any) -> tuple[str | None, str]:
    """(what is wrong with a registered class or None, its kind)."""
    if not isinstance(cls, type):
        return f"register() wants a class, got {type(cls).__name__}", "unknown"
    has_run = callable(getattr(cls, "run", None))
    has_process = callable(getattr(cls, "process", None))
    kind = "strategy" if has_run else "processor" if has_process else "unknown"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        return "needs a `name`: lowercase letters, digits, '-' or '_'", kind
    if has_run == has_process:
        return "needs exactly one of `run(ctx)` (a strategy) or `process(...)` (a processor)", kind
    if not isinstance(getattr(cls, "description", None), str):
        return "needs a one-line `description` string", kind
    options = getattr(cls, "options", None)
    if not isinstance(options, tuple) or not all(isinstance(o, OptionSpec) for o in options):
        return "needs `options`: a tuple of OptionSpec", kind
    return None, kind


# --- sources -----------------------------------------------------------------------------------


def builtin_folder() -> Path:
    """The top-level ``plugins`` package shipped next to ``termlm``."""
    import termlm

    return Path(termlm.__file__).resolve().parent.parent / "plugins"


def user_folder() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("termlm")) / "plugins"


def env_folders() -> list[Path]:
    raw = os.environ.get(ENV_DIRS, "")
    return [Path(part) for part in raw.split(os.pathsep) if part.strip()]


def build_plugin_manager(
    *, plugins_dirs: Sequence[Path] = (), entry_points: bool = True, user_dir: bool = True
) -> PluginRegistry:
    """A fresh registry. Sources in order: built-ins (the ``plugins`` package), installed
    packages' entry points (group ``termlm.plugins``), the user's plugin folder,
    ``plugins_dirs``, then ``TERMLM_PLUGINS_DIR`` (os.pathsep separated)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = PluginRegistry(manager)
    load_folder(registry, builtin_folder(), "builtin", prefix="plugins", required=True)
    if entry_points:
        load_entry_points(registry)
    if user_dir:
        folder = user_folder()
        load_folder(registry, folder, f"user folder {folder}", required=False)
    for folder in [*map(Path, plugins_dirs), *env_folders()]:
        load_folder(registry, folder, f"folder {folder}", required=True)
    return registry


def load_folder(
    registry: PluginRegistry, folder: Path, source: str, *, prefix: str = "", required: bool
) -> None:
    """Load every ``*.py`` module of a folder (names starting with "_" are skipped)."""
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".py")
    except FileNotFoundError:
        if required:
            registry.add_error(str(folder), "folder", source, "the folder does not exist")
        return
    except OSError as exc:
        registry.add_error(str(folder), "folder", source, f"cannot read the folder: {exc}")
        return
    if not prefix:
        digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
        prefix = f"termlm_plugins_{digest}"
    for path in files:
        if path.name.startswith("_"):
            continue
        try:
            module = _import_file(path, f"{prefix}.{path.stem}")
        except BaseException as exc:  # a plugin file may raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            registry.add_error(path.stem, "module", source, _describe(exc))
            continue
        register_module(registry, module, path.stem, source)


def load_entry_points(registry: PluginRegistry) -> None:
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        source = f"entry point {dist.name if dist is not None else ep.value}"
        try:
            module = ep.load()
        except Exception as exc:
            registry.add_error(ep.name, "module", source, _describe(exc))
            continue
        register_module(registry, module, ep.name, source)


def register_module(registry: PluginRegistry, module: Any, label: str, source: str) -> None:
    """Register a module with pluggy, check its hooks, and let it register its classes."""
    manager = registry.manager
    try:
        manager.register(module, name=f"{source}:{label}")
        manager.check_pending()
    except Exception as exc:
        if manager.is_registered(module):
            manager.unregister(module)
        registry.add_error(label, "module", source, _describe(exc))
        return
    callback: Callable[[type[Any]], None] = lambda cls: registry.add(cls, source)  # noqa: E731
    for impl in manager.hook.register_plugins.get_hookimpls():
        if impl.plugin is not module:
            continue
        kwargs = {"register": callback}
        try:
            impl.function(**{k: kwargs[k] for k in impl.argnames})
        except Exception as exc:
            registry.add_error(
                label, "module", source, f"register_plugins failed: {_describe(exc)}"
            )


def _import_file(path: Path, module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
