"""Which build of the redaction engine runs: the compiled extensions or their sources.

The engine's modules are compiled with mypyc at install time (see setup.py) into C
extensions beside their sources, which Python imports in their place. The sources
stay the definition of what the engine does: a compiled module whose source is not
the one it was built from (an edited checkout that was not reinstalled) is never
used, because it would redact by rules that no longer match the code a reviewer
reads. The build records the SHA-256 of each source it compiled
(``compiled_sources.json``); file times would not do, since installing a wheel
writes the files in no particular order.
PERPETUA_REDACTION_PURE=1 in the environment runs the sources as well.

`load_sources` gives a second, pure-Python copy of the service beside the compiled
one, so that the benchmark and the tests can run both on the same text.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

# In import order: each imports only those before it (and models, errors).
COMPILED_MODULES = ("lexicon", "cards", "spoken", "engine")
_PACKAGE = "perpetua.redaction"
_HERE = Path(__file__).resolve().parent
# Written by setup.py beside the extensions: the SHA-256 of each compiled source.
_STAMP = "compiled_sources.json"


def _extension(name: str) -> Path | None:
    for suffix in EXTENSION_SUFFIXES:
        path = _HERE / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def stale_modules() -> list[str]:
    """The compiled modules whose source is not the one they were built from."""
    built = [name for name in COMPILED_MODULES if _extension(name) is not None]
    if not built:
        return []
    try:
        digests = json.loads((_HERE / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        # Extensions with no record of their sources cannot be vouched for.
        return built
    return [
        name
        for name in built
        if digests.get(name)
        != hashlib.sha256((_HERE / f"{name}.py").read_bytes()).hexdigest()
    ]


def is_compiled() -> bool:
    """Whether the engine that `perpetua.redaction` runs is the compiled one."""
    engine = sys.modules.get(f"{_PACKAGE}.engine")
    if engine is None:
        engine = importlib.import_module(f"{_PACKAGE}.engine")
    return not (engine.__file__ or "").endswith(".py")


def _run_source(name: str) -> ModuleType:
    full = f"{_PACKAGE}.{name}"
    spec = importlib.util.spec_from_file_location(full, _HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no source for {full}")
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the class is made.
    sys.modules[full] = module
    spec.loader.exec_module(module)
    return module


def use_sources_if_needed() -> None:
    """Import the engine from its sources when asked to, or when a build is stale.

    Runs before anything imports the engine, so every later import gets the
    sources; once a compiled module has been imported this changes nothing.
    """
    if any(f"{_PACKAGE}.{name}" in sys.modules for name in COMPILED_MODULES):
        return
    wanted = os.environ.get("PERPETUA_REDACTION_PURE") == "1"
    if not wanted and not any(_extension(n) for n in COMPILED_MODULES):
        return
    if wanted or stale_modules():
        package = sys.modules[_PACKAGE]
        for name in COMPILED_MODULES:
            setattr(package, name, _run_source(name))


def load_sources() -> ModuleType:
    """A separate copy of `perpetua.redaction.service` running the sources alone.

    Its results are built from the same models as the package's own, so they
    compare equal. The modules the package already imported are left as they were.
    """
    names = [f"{_PACKAGE}.{name}" for name in (*COMPILED_MODULES, "service")]
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name in COMPILED_MODULES:
            _run_source(name)
        return _run_source("service")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


use_sources_if_needed()
