"""``aft-fast info``: what the compiled library contains and what this machine has."""
import click
import torch

from aft_fast import ops
from aft_fast.commands.common import json_option
from aft_fast.io import write_json
from aft_fast.runtime import environment, pick_device


@click.command()
@json_option
def info(json_path):
    """Build information: compiled kernels, CUDA architectures, torch, device."""
    report = {"build": ops.build_info(), "environment": environment(pick_device("auto")),
              "cuda_available": torch.cuda.is_available()}
    b = report["build"]
    if b["compiled"]:
        click.echo(f"aft_fast {b['version']} compiled against torch {b['torch']} ({b['cxx']})")
        click.echo(f"  ops: {', '.join(b['ops'])}")
        click.echo("  CPU kernels: yes")
        click.echo(f"  CUDA kernels: {'yes, archs ' + b['cuda_archs'] if b['cuda_kernels'] else 'no'}")
    else:
        click.echo(f"aft_fast compiled ops MISSING ({b['error']}): {b['fix']}")
        click.echo("  the pure-PyTorch reference is used instead (slow)")
    env = report["environment"]
    click.echo(f"runtime: torch {env['torch']}, device {env['device']}, "
               f"CUDA available: {report['cuda_available']}")
    if json_path:
        write_json(report, json_path)
