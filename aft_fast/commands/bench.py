"""``aft-fast bench`` and ``aft-fast profile``: how fast the engine's attack loop and every
method's training iteration are, measured side by side in one process, and where the time of one
iteration goes."""
from __future__ import annotations

import shlex

import click
import torch

from aft_fast.commands.common import FRACTION, config_option, json_option, options_from_dataclass
from aft_fast.io import write_json
from aft_fast.perf.workload import Workload
from aft_fast.methods import ADVERSARIAL
from aft_fast.policy import AMP_CHOICES

WORKLOAD_HELP = {
    "arch": "Any name of `aft-fast info --archs` (small_cnn takes 28×28, 1 channel).",
    "steps": "PGD steps per attack.",
    "eps": "l∞ radius in [0,1] pixel units.",
    "alpha": "PGD step size.",
    "amp": "Autocast dtype of the engine (the plain reference is fp32).",
    "channels_last": "Engine model and batch in channels_last (the plain reference stays NCHW).",
    "compile": "torch.compile the engine's forward + input backward (and the floor).",
    "device": "auto, cpu, cuda or cuda:N.",
}


def workload_options(fn):
    """The model/batch/attack options bench and profile share: one flag per `Workload` field,
    and --threads."""
    fn = click.option("--threads", type=click.IntRange(min=1), default=None,
                      help="CPU threads for torch (default: torch's own choice).")(fn)
    return options_from_dataclass(Workload, help=WORKLOAD_HELP, choices={"amp": AMP_CHOICES},
                                  types={"eps": FRACTION, "alpha": FRACTION})(fn)


def make_workload(params: dict) -> Workload:
    """The Workload of a command's keyword arguments (its flags); sets --threads."""
    threads = params.pop("threads", None)
    if threads:
        torch.set_num_threads(threads)
    return Workload(**params)


def command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from the options given on the command line (for results)."""
    from click.core import ParameterSource

    words = ["aft-fast", ctx.info_name]
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or \
                ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        if param.is_flag:
            words.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        for v in (value if param.multiple else [value]):
            words += [param.opts[0], f"{v:.6g}" if isinstance(v, float) else str(v)]
    return shlex.join(words)


def parse_epochs(values) -> dict[str, float]:
    """``--epochs METHOD=N`` items as {method: N} (the names and values are checked by run_bench)."""
    out = {}
    for item in values:
        name, sep, num = item.partition("=")
        try:
            out[name] = float(num) if sep else None
        except ValueError:
            out[name] = None
        if out[name] is None:
            raise click.BadParameter(f"expected METHOD=N with N a number, got {item!r}",
                                     param_hint="--epochs")
    return out


def parse_methods(value: str) -> tuple[str, ...]:
    """A comma list of methods, or none (the names are checked by run_bench)."""
    if value.strip().lower() == "none":
        return ()
    return tuple(m.strip() for m in value.split(",") if m.strip())


def _progress(msg: str) -> None:
    click.echo(f"  … {msg}", err=True)


@click.command("bench")
@config_option
@workload_options
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed rounds (the median is reported).")
@click.option("--methods", default=",".join(ADVERSARIAL), show_default=True,
              help="Methods whose training iteration is timed (comma list of names or "
                   "package.module:Class import paths, or none).")
@click.option("--replays", type=click.IntRange(min=1), default=4, show_default=True,
              help="Free AT's m (weight updates per batch).")
@click.option("--epochs", "epochs_opt", multiple=True, metavar="METHOD=N",
              help="Epochs of the full-run projection (default: each method's imagenet_epochs). "
                   "Repeatable.")
@click.option("--dataset-size", type=click.IntRange(min=1), default=1_281_167, show_default=True,
              help="Training images of the projected run (ImageNet-1k by default).")
@click.option("--third-party/--no-third-party", default=True, show_default=True,
              help="Also time torchattacks.PGD when installed.")
@json_option
@click.option("--md", "md_path", type=click.Path(dir_okay=False), default=None,
              help="Write the markdown table here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG bar chart here.")
@click.pass_context
def bench_command(ctx, warmup, repeats, methods, replays, epochs_opt, dataset_size, third_party,
                  json_path, md_path, plot_path, **workload):
    """Engine PGD vs plain PyTorch vs torchattacks, the compute floor, and each method's iteration."""
    from aft_fast.perf.bench import run_bench
    from aft_fast.perf.report import (attack_table, bench_markdown, bench_summary_line,
                                      format_text, method_table, write_bench_plot, write_markdown)

    w = make_workload(workload)
    method_names, epochs = parse_methods(methods), parse_epochs(epochs_opt)
    command = command_line(ctx)
    result = run_bench(w, warmup=warmup, repeats=repeats, methods=method_names, replays=replays,
                       epochs=epochs, dataset_size=dataset_size, third_party=third_party,
                       progress=_progress)
    result["command"] = command
    click.echo(bench_summary_line(result))
    click.echo(format_text(attack_table(result)))
    click.echo(f"speedup (engine vs plain reference): {result['speedup']:.2f}×")
    if result["methods"]:
        click.echo(format_text(method_table(result)))
    if json_path:
        write_json(result, json_path)
    if md_path:
        write_markdown(bench_markdown(result, command), md_path)
    if plot_path:
        write_bench_plot(result, plot_path)


@click.command("profile")
@config_option
@workload_options
@click.option("--iterations", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed iterations (parts are averaged over them).")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None,
              help="Write a Chrome trace (chrome://tracing, Perfetto) of a torch.profiler pass.")
@click.option("--top-ops", type=click.IntRange(min=0), default=10, show_default=True,
              help="Ops listed by self time from a torch.profiler pass (0: no profiler pass).")
@json_option
@click.pass_context
def profile_command(ctx, iterations, warmup, trace_path, top_ops, json_path, **workload):
    """Where the time of one PGD-AT iteration goes: forward, input backward, fused step, ..."""
    from aft_fast.perf.profile import profile_table, run_profile
    from aft_fast.perf.report import format_text

    if workload["compile"]:
        raise click.BadParameter("profile times the eager iteration part by part; a compiled graph "
                                 "has no parts to time: drop --compile", param_hint="--compile")
    w = make_workload(workload)
    result = run_profile(w, iterations=iterations, warmup=warmup, trace=trace_path,
                         top_ops=top_ops, progress=_progress)
    result["command"] = command_line(ctx)
    click.echo(f"{result['environment']['device']}: {w.arch} {w.image_size}px batch {w.batch}, "
               f"{result['settings']['iteration']}, mean of {iterations} iterations")
    click.echo(format_text(profile_table(result)))
    click.echo(f"machine load average (1 min) at start / end: {result['load_average'][0]:.2f} / "
               f"{result['load_average'][1]:.2f}")
    if not result["within_tolerance"]:
        click.echo(f"warning: the parts miss {result['other_pct']:.1f}% of the total "
                   f"(tolerance {result['tolerance_pct']:g}%)", err=True)
    if result["top_ops"]:
        click.echo("top ops by self time (torch.profiler):")
        click.echo(format_text([["op", "calls", "self ms"]] + [
            [o["op"], str(o["calls"]), f"{o['self_ms']:.1f}"] for o in result["top_ops"]]))
    if json_path:
        write_json(result, json_path)
