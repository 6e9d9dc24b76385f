"""Builds the card-number redaction engine as C extensions with mypyc.

Every transcript passes through the redaction engine before it is stored, so its
speed bounds how fast calls can be written. The engine's modules are ordinary typed
Python; mypyc compiles them to C extensions that sit beside the sources and are
imported in their place. Everything else in pyproject.toml describes the package.

Beside the extensions, the build writes the SHA-256 of each compiled source
(``compiled_sources.json``), so that the package can tell whether the source it
holds is the one that was compiled (see ``perpetua/redaction/compiled.py``).

A machine without a C compiler cannot build them, and the install then fails with
the compiler's error rather than quietly giving a slower engine. Setting
PERPETUA_REDACTION_PURE=1 installs the pure-Python engine instead, which gives the
same results (a test compares the two on every run of the suite).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

STAMP = "compiled_sources.json"

# The modules that run per character or per number of a transcript. models, errors
# and service build result objects once per call and gain nothing from compiling.
COMPILED = [
    "src/perpetua/redaction/cards.py",
    "src/perpetua/redaction/lexicon.py",
    "src/perpetua/redaction/spoken.py",
    "src/perpetua/redaction/engine.py",
]


class _BuildAndStamp(build_ext):
    """Builds the extensions, then records which sources they were built from."""

    def run(self) -> None:
        super().run()
        if not self.extensions:
            return
        # The folder the engine's extensions went to: the source tree for an
        # editable install, the build tree (and so the wheel) otherwise.
        engine = self.get_ext_fullpath("perpetua.redaction.engine")
        digests = {
            Path(source).stem: hashlib.sha256(Path(source).read_bytes()).hexdigest()
            for source in COMPILED
        }
        stamp = Path(engine).parent / STAMP
        stamp.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")


def _extensions() -> list[object]:
    if os.environ.get("PERPETUA_REDACTION_PURE") == "1":
        return []
    from mypyc.build import mypycify

    # A fixed group name keeps the shared runtime library's file name stable, so
    # that .gitignore and a reader of the source tree can recognise it.
    return list(mypycify(COMPILED, group_name="perpetua_redaction", opt_level="3"))


setup(ext_modules=_extensions(), cmdclass={"build_ext": _BuildAndStamp})
