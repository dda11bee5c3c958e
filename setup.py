"""Build dex; compile the matching engine with Cython when this machine can.

The engine's source (dex/engine/{book,engine,snapshot,invariants,digest,wire}.py, typed
by the .pxd files beside them) is compiled a second time as the package
`dex.engine._compiled`: the same text, copied to build/cysrc under that
package's name and compiled there, the extension modules landing in
dex/engine/_compiled/. `dex.engine` imports the compiled engine when it is
there and current, and the pure one otherwise (docs/ENGINE.md, "Two
implementations").

The compiled engine is optional: without Cython or a C compiler, the
install still succeeds and prints one loud line, and dex runs the pure
engine. `DEX_BUILD_PURE=1` skips the compilation on purpose.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
ENGINE_DIR = Path("dex") / "engine"
COMPILED_PACKAGE = "dex.engine._compiled"
SOURCE_DIR = Path("build") / "cysrc"  # where the copies under the compiled package's name go
STAMP = ENGINE_DIR / "_compiled" / "_stamp.py"  # written after a build: the sources it compiled
_COMPILED_DIGEST: str | None = None  # source_digest of the copies handed to Cython


def _load_sources():
    """dex/engine/sources.py, by its path (dex itself is not installed yet):
    the modules and headers to compile and the digest dex.engine checks."""
    spec = importlib.util.spec_from_file_location("_dex_engine_sources", ROOT / ENGINE_DIR / "sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sources = _load_sources()


def _loud(message: str) -> None:
    print(f"*** dex: {message}: the engine runs in pure Python (slower, same behaviour) ***", file=sys.stderr)


def _copy_if_changed(source: Path, target: Path) -> None:
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)


def _extensions() -> list:
    if os.environ.get("DEX_BUILD_PURE") == "1":
        _loud("DEX_BUILD_PURE=1, the compiled engine is not built")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _loud("Cython is not installed, the compiled engine is not built")
        return []
    package_dir = ROOT / SOURCE_DIR / "dex" / "engine" / "_compiled"
    package_dir.mkdir(parents=True, exist_ok=True)
    for init in (package_dir.parent.parent, package_dir.parent, package_dir):
        (init / "__init__.py").touch()
    for name in sources.MODULES:
        for suffix in (".py", ".pxd"):
            source = ROOT / ENGINE_DIR / (name + suffix)
            if source.exists():
                _copy_if_changed(source, package_dir / (name + suffix))
    for header in sources.HEADERS:
        _copy_if_changed(ROOT / ENGINE_DIR / header, package_dir / header)
    # The stamp names what was copied (and so compiled), not what the sources
    # are when the build ends: an edit during a build leaves the build stale.
    global _COMPILED_DIGEST
    _COMPILED_DIGEST = sources.source_digest(package_dir)
    extensions = [
        Extension(
            f"{COMPILED_PACKAGE}.{name}",
            [str(SOURCE_DIR / "dex" / "engine" / "_compiled" / f"{name}.py")],
            include_dirs=[str(SOURCE_DIR / "dex" / "engine" / "_compiled")],
        )
        for name in sources.MODULES
    ]
    try:
        return _cythonize(cythonize, extensions)
    except Exception as e:  # a Cython error in the engine's source: dex still installs
        _loud(f"Cython could not translate the engine ({type(e).__name__}: {e})")
        return []


def _cythonize(cythonize, extensions: list) -> list:
    return cythonize(
        extensions,
        include_path=[str(ROOT / SOURCE_DIR)],
        build_dir=str(Path("build") / "cython"),
        quiet=True,
        compiler_directives={
            "language_level": 3,
            "annotation_typing": False,  # types come from the .pxd files only
            "boundscheck": False,
            "wraparound": True,  # the source indexes lists from the end ([-1])
            "cdivision": False,  # Python's floor division and modulo, as the pure engine
            "embedsignature": False,
        },
    )


_OPENSSL_PROBE = """
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
int dex_probe(void)
{
    unsigned char md[32];
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, "", 0);
    SHA256_Final(md, &c);
    SHA256((const unsigned char *)"", 0, md);
    return md[0];
}
"""


def _links(build, source: str, libraries: list[str]) -> bool:
    """Whether `source` compiles and links as a shared object here, the way
    build_ext links the extensions (its compiler, include and library
    directories, LDSHARED and LDFLAGS). The compiler's own output is kept off
    the console: a failed probe is reported in one line by the caller."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.c"
        path.write_text(source)
        saved = os.dup(1), os.dup(2)
        quiet = os.open(os.devnull, os.O_WRONLY)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            objects = build.compiler.compile([str(path)], output_dir=tmp, include_dirs=build.include_dirs)
            build.compiler.link_shared_object(
                objects, str(Path(tmp) / "probe.so"), libraries=libraries, library_dirs=build.library_dirs
            )
        except Exception:
            return False
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (quiet, *saved):
                os.close(fd)
    return True


# A module global the compiled engine reads (a bound such as OPEN_MAX, which
# the tests swap, so it stays a module attribute) is cached by Cython against
# the module dict's version tag, and looked up again only when the dict has
# changed. Cython turns that cache off from CPython 3.12, where PEP 699
# deprecated the tag for extensions, so on 3.13 every such read was a dict
# lookup again (callgrind, 30,000 benchmark commands: 12 M instructions in
# Engine.apply, 1.5%). CPython 3.12 and 3.13 still give the dict a new tag on
# every change (it is what their dict watchers use), and remove the field in
# 3.14: the cache is turned back on for those two versions only, with the
# compiler's deprecation warning for the field silenced.
# tests/unit/test_engine_place.py swaps a bound after the engine has read it.
_DICT_VERSIONS = (3, 12) <= sys.version_info[:2] < (3, 14)
_DICT_VERSION_MACROS = [("CYTHON_USE_DICT_VERSIONS", "1")] if _DICT_VERSIONS else []
_DICT_VERSION_FLAGS = ["-Wno-deprecated-declarations"] if _DICT_VERSIONS else []


class OptionalBuildExt(build_ext):
    """build_ext that reports a failure loudly instead of failing the install."""

    def build_extensions(self) -> None:
        # SHA-256 through OpenSSL (dex/engine/dex_sha256.h) where the functions
        # it calls link; else the compiled modules hash through hashlib, as the
        # pure ones. (No message where nothing compiles: the build's own
        # failure says so.)
        if _links(self, _OPENSSL_PROBE, ["crypto"]):
            for ext in self.extensions:
                ext.define_macros.append(("DEX_HAVE_OPENSSL", "1"))
                ext.libraries.append("crypto")
        elif _links(self, "int dex_probe(void) { return 0; }\n", []):
            print("*** dex: OpenSSL's SHA-256 headers or libcrypto not found: the compiled engine hashes through hashlib ***", file=sys.stderr)
        for ext in self.extensions:
            ext.define_macros.extend(_DICT_VERSION_MACROS)
            if self.compiler.compiler_type == "unix":
                ext.extra_compile_args.extend(_DICT_VERSION_FLAGS)
        super().build_extensions()

    def run(self) -> None:
        stamp = ROOT / STAMP
        stamp.unlink(missing_ok=True)
        try:
            super().run()
        except Exception as e:  # no compiler, a compile error: dex still installs
            _loud(f"the compiled engine did not build ({type(e).__name__}: {e})")
            return
        if not self.extensions:
            return
        text = f'"""Written by setup.py after compiling the engine."""\n\nSOURCE_SHA256 = "{_COMPILED_DIGEST}"\n'
        stamp.write_text(text)
        if not self.inplace:  # a wheel (`pip install .`): the stamp goes beside the extension modules
            built = Path(self.build_lib) / STAMP
            built.parent.mkdir(parents=True, exist_ok=True)
            built.write_text(text)


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
