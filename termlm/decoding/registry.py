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
BUILTIN_PACKAGE = "termlm.builtin_plugins"  # the repository's plugins/ folder, installed
DISTRIBUTION = "termlm"
EMPTY_FOLDER = "an empty folder name: ignored (it never means the current folder)"
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
        self.skipped: list[str] = []  # processors left out of a build, and why (shown as warnings)

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
        """The strategy and the processor chain, built with checked option values.

        A processor whose constructor raises is left out, named in ``skipped``, and marked
        broken for later builds, unless one of its own options was set (then the settings are
        at fault: ``PluginError``).
        """
        checked = validate_options(self, strategy, values)
        strat = _construct(self.strategy_class(strategy), checked)
        procs = []
        for cls in self.processor_classes():
            try:
                procs.append(_construct(cls, checked))
            except PluginError as exc:
                if {spec.name for spec in cls.options} & set(values):
                    raise
                self._break(cls.name, exc.message)
        return strat, procs

    def _break(self, name: str, why: str) -> None:
        """Mark a loaded plugin unusable (its constructor failed): listed with the error."""
        info = self._by_name.pop(name, None)
        if info is None:
            return
        error = f"cannot be built: {why}"
        self._infos = [
            PluginInfo(i.name, i.kind, i.source, i.description, [], error) if i is info else i
            for i in self._infos
        ]
        self.skipped.append(f"processor {name!r} ({info.source}) {error}; generating without it")

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
    """An instance; whatever the constructor raises becomes a PluginError naming the plugin."""
    kwargs = {spec.name: values[spec.name] for spec in cls.options}
    try:
        return cls(**kwargs)
    except PluginError:
        raise
    except (ValueError, TypeError) as exc:  # the plugin's own check of a value
        raise PluginError(f"{cls.name}: {exc}") from exc
    except BaseException as exc:  # a broken plugin may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise PluginError(f"plugin {cls.name!r} failed to start: {_describe(exc)}") from exc


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
    """Where the built-in plugin files are: the installed ``termlm.builtin_plugins`` package, or
    the repository's ``plugins/`` folder next to the ``termlm`` package (a checkout)."""
    import termlm

    package = Path(termlm.__file__).resolve().parent
    installed = package / "builtin_plugins"
    return installed if installed.is_dir() else package.parent / "plugins"


def _is_builtin(ep: Any) -> bool:
    """An entry point of termlm itself that names a module of ``termlm.builtin_plugins``."""
    dist = getattr(ep, "dist", None)
    module = str(ep.value).split(":", 1)[0]
    return (
        dist is not None
        and (dist.name or "").lower() == DISTRIBUTION
        and module.startswith(BUILTIN_PACKAGE + ".")
    )


def load_builtins(registry: PluginRegistry) -> None:
    """The built-ins, through termlm's own entry points (group ``termlm.plugins``), like anyone
    else's. A checkout whose install predates them loads the same files from the folder."""
    from importlib.metadata import entry_points

    ours = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if _is_builtin(ep)]
    if not ours:
        load_folder(registry, builtin_folder(), "builtin", prefix=BUILTIN_PACKAGE, required=True)
        return
    for ep in sorted(ours, key=lambda e: e.name):
        try:
            module = ep.load()
        except Exception as exc:
            registry.add_error(ep.name, "module", "builtin", _describe(exc))
            continue
        register_module(registry, module, ep.name, "builtin")


def user_folder() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("termlm")) / "plugins"


def env_folders() -> list[str]:
    """The entries of ``TERMLM_PLUGINS_DIR`` as given (an empty one is reported, never used)."""
    raw = os.environ.get(ENV_DIRS, "")
    return raw.split(os.pathsep) if raw.strip() else []


def build_plugin_manager(
    *,
    plugins_dirs: Sequence[str | Path] = (),
    entry_points: bool = True,
    user_dir: bool = True,
) -> PluginRegistry:
    """A fresh registry. Sources in order: built-ins (termlm's own entry points, package
    ``termlm.builtin_plugins``), installed packages' entry points (group ``termlm.plugins``),
    the user's plugin folder, ``plugins_dirs``, then ``TERMLM_PLUGINS_DIR`` (os.pathsep
    separated). An empty folder name is listed as an error and skipped: never the current
    folder."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = PluginRegistry(manager)
    load_builtins(registry)
    if entry_points:
        load_entry_points(registry)
    if user_dir:
        folder = user_folder()
        load_folder(registry, folder, f"user folder {folder}", required=False)
    named = [(str(d), "--plugins-dir") for d in plugins_dirs]
    named += [(d, ENV_DIRS) for d in env_folders()]
    for text, where in named:
        if not text.strip():
            registry.add_error("''", "folder", f"folder '' ({where})", EMPTY_FOLDER)
            continue
        folder = Path(text)
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
        if _is_builtin(ep):
            continue  # loaded first, by load_builtins
        dist = getattr(ep, "dist", None)
        source = f"entry point {dist.name if dist is not None else ep.value}"
        try:
            module = ep.load()
        except BaseException as exc:  # an installed package may raise anything on import
            if isinstance(exc, KeyboardInterrupt):
                raise
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
