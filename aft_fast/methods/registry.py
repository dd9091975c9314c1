"""A user's own method by import path, `--method package.module:Class` (the entry-point syntax,
as for an arch): a subclass of `aft_fast.methods.Method`. Naming it on the command line (or in
`compare --methods`) is the user's choice to import it; a checkpoint that names one is read
without importing it (`eval` and `load_checkpoint` need only the model)."""
from __future__ import annotations

from aft_fast.errors import OptionError
from aft_fast.methods.base import Method
from aft_fast.models.import_path import is_import_path, resolve


def load_method(path: str, *, option: str = "method", builtin: tuple[str, ...] = ()) -> type:
    if not is_import_path(path):
        raise OptionError(option, f"must be one of {', '.join(builtin)} or an import path "
                          f"package.module:Class of your own method; got {path!r}")
    cls = resolve(path, option)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise OptionError(option, f"{path!r} is a {type(cls).__name__}, not a subclass of "
                          "aft_fast.methods.Method (see docs/METHODS.md)")
    if cls.name in builtin or cls.name == Method.name or not cls.name:
        raise OptionError(option, f"{path!r}: its name {cls.name!r} is "
                          f"{'a built-in method' if cls.name in builtin else 'not set'}; give "
                          "the class its own `name` (a short word: run folders and tables use it)")
    return cls
