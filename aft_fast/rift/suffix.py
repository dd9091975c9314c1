"""Run a network from one module on, fed with cached activations: what makes MRC cheap.

Perturbing a module's weight changes nothing computed before the module's first call, so the
values entering the rest of the network are computed once (`Split.cache`) and each ascent step
runs only the suffix (`Split.suffix`). The cut is made on the network's `torch.fx` graph: the
cached values are every value computed before the module that the module or a later operation
reads, i.e. its input *and* any skip connection that jumps over it (a ResNet block's shortcut),
so the suffix is exact for any traceable network, not just for `nn.Sequential`.
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn


def trace(model: nn.Module) -> fx.GraphModule | None:
    """The model's fx graph (sharing its modules and parameters), or None if it cannot be traced
    (data-dependent control flow); callers then run the whole network."""
    try:
        return fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure means "no cache", never an error
        return None


class Split:
    """`model` cut before the first call of the submodule `target` (a name in `model`)."""

    def __init__(self, traced: fx.GraphModule, target: str):
        nodes = list(traced.graph.nodes)
        calls = [i for i, n in enumerate(nodes) if n.op == "call_module" and n.target == target]
        if not calls:
            raise LookupError(f"{target} is not called as a module in the traced graph")
        cut = calls[0]
        later = nodes[cut:]
        after = set(later)
        # Values from before the cut that the cut module or anything after it reads.
        self.frontier = [n for n in nodes[:cut] if any(u in after for u in n.users)]
        self.prefix = self._graph_module(traced, nodes[:cut], self.frontier, prefix=True)
        self.suffix = self._graph_module(traced, later, self.frontier, prefix=False)

    @staticmethod
    def _graph_module(traced, keep, frontier, *, prefix: bool) -> fx.GraphModule:
        graph, env = fx.Graph(), {}
        if not prefix:
            for n in frontier:  # the suffix's inputs: the cached values
                env[n] = graph.placeholder(f"cached_{n.name}")
        for n in keep:
            if n.op == "output":
                graph.output(fx.map_arg(n.args[0], lambda a: env[a]))
                continue
            env[n] = graph.node_copy(n, lambda a: env[a])
        if prefix:
            graph.output(tuple(env[n] for n in frontier))
        graph.lint()
        return fx.GraphModule(traced, graph)  # shares traced's (= the model's) submodules

    @torch.no_grad()
    def cache(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The frontier values for input `x` (no gradient: nothing before the cut changes)."""
        return tuple(self.prefix(x))
