"""Plain-Python code of an installed library, taken from its source file without running
its package's imports: one function, or one light module.

silero VAD's `get_speech_timestamps_from_probs` (speech probabilities to segments), funasr's
`merge_vad` and funasr's `SileroVad._split_long_segments` are plain Python over lists; but
the modules that hold them (silero_vad/utils_vad.py, funasr/utils/vad_utils.py,
funasr/models/silero_vad/model.py) import torch at their top, and both packages' `__init__`
import torch too: about 540 MB resident and seconds of start-up for a few loops. Gap filled:
neither library offers these functions without torch. So this compiles just the one named
definition from the installed file, found with `importlib.util.find_spec` (which runs
nothing): the library's code at its installed version, not a copy of it. `library_module`
does the same for a whole file whose own imports are light (rich_text.py).
tests/unit/test_vad.py holds what the VAD stage builds from them to the libraries' own path,
on the same audio.
"""

from __future__ import annotations
import __future__

import ast
import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any


@functools.cache
def library_function(
    package: str, relative_path: str, name: str, owner: str | None = None
) -> Callable[..., Any]:
    """`name` as defined in `package`'s file `relative_path` (inside class `owner`, if named;
    a staticmethod then). Only the function's own code runs: it may use builtins, nothing
    else of its module. Raises LookupError naming what is missing."""
    path = _package_dir(package) / relative_path
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    scope = tree.body
    if owner is not None:
        scope = next((n.body for n in scope if isinstance(n, ast.ClassDef) and n.name == owner), [])
    node = next((n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None:
        where = f"{owner}.{name}" if owner else name
        raise LookupError(f"{package} {path}: no function {where} (has the library changed?)")
    node.decorator_list = [
        d for d in node.decorator_list if not (isinstance(d, ast.Name) and d.id == "staticmethod")
    ]
    code = compile(
        ast.Module(body=[node], type_ignores=[]),
        str(path),
        "exec",
        flags=__future__.annotations.compiler_flag,  # its annotations are never evaluated
        dont_inherit=True,
    )
    namespace: dict[str, Any] = {"__name__": f"_{package}_{name}"}
    exec(code, namespace)  # the library's own definition, and nothing else of its file
    function: Callable[..., Any] = namespace[name]
    return function


@functools.cache
def library_module(package: str, relative_path: str) -> Any:
    """A whole module of `package`, loaded from its file as a module of its own, without
    running the package's `__init__`: for a file whose own imports are light (funasr's
    postprocess_utils.py imports only the standard library) in a package whose `__init__`
    is not (funasr's imports torch)."""
    path = _package_dir(package) / relative_path
    spec = importlib.util.spec_from_file_location(f"_{package}_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise LookupError(f"{package} {path}: not a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds it without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))
