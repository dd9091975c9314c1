"""The training methods, one module each (the contract: `base.Method`), and the registry derived
from them: built-in names in the order the CLI and the tables list them, and a user's own method
by import path (`package.module:Class`, a subclass of `Method`)."""
from __future__ import annotations

from aft_fast.methods.aft import AFT
from aft_fast.methods.atta import ATTA
from aft_fast.methods.base import Budget, Method, MethodOption  # noqa: F401
from aft_fast.methods.fast_at import FastAT
from aft_fast.methods.free_at import FreeAT
from aft_fast.methods.mart import MART
from aft_fast.methods.natural import Natural
from aft_fast.methods.nfgsm import NFGSM
from aft_fast.methods.pgd_at import PGDAT
from aft_fast.methods.registry import load_method
from aft_fast.methods.trades import TRADES, TRADESFineTune
from aft_fast.methods.yopo import YOPO

BUILTIN: tuple[type[Method], ...] = (Natural, PGDAT, FreeAT, FastAT, AFT, TRADES,
                                       TRADESFineTune, NFGSM, MART, YOPO, ATTA)
METHODS = {m.name: m for m in BUILTIN}
NAMES = tuple(METHODS)
ADVERSARIAL = tuple(m.name for m in BUILTIN if m.adversarial)


def get(name: str, *, option: str = "method") -> type[Method]:
    """The method class of a built-in `name` or an import path `package.module:Class`."""
    if name in METHODS:
        return METHODS[name]
    return load_method(name, option=option, builtin=NAMES)


def make_method(name: str, **kwargs) -> Method:
    return get(name)(**kwargs)


def own_options() -> dict[str, list]:
    """{option name: [MethodOption of each built-in method that declares it]}: `train`'s flags."""
    out: dict[str, list] = {}
    for cls in BUILTIN:
        for o in cls.options:
            out.setdefault(o.name, []).append((cls, o))
    for name, declared in out.items():  # one flag: one meaning
        assert len({o for _, o in declared}) == 1, f"option {name} is declared differently"
    return out
