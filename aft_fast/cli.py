"""``aft-fast``: the command-line driver. Each command lives in :mod:`aft_fast.commands`; the group
reports every command's library errors (`aft_fast.errors.OptionError`) as its flag's bad value."""
import click

from aft_fast.commands.analyze import analyze_group
from aft_fast.commands.common import Group
from aft_fast.commands.compare import compare_command
from aft_fast.commands.info import info
from aft_fast.commands.bench import bench_command, profile_command
from aft_fast.commands.bench_loader import bench_loader_command
from aft_fast.commands.data import data_group
from aft_fast.commands.demo import demo_command
from aft_fast.commands.evaluate import eval_command
from aft_fast.commands.methods import methods_command
from aft_fast.commands.models import models_command
from aft_fast.commands.rift import rift_group
from aft_fast.commands.robustify import robustify_command
from aft_fast.commands.schedule import schedule_command
from aft_fast.commands.train import train_command

COMMANDS = [info, train_command, eval_command, schedule_command, demo_command, data_group,
            bench_loader_command, bench_command, profile_command, models_command, methods_command,
            analyze_group, rift_group, compare_command, robustify_command]


@click.group(cls=Group,
             context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main():
    """Adversarial training and fine-tuning (AFT) with fused C++/CUDA attack ops."""


for command in COMMANDS:
    main.add_command(command)

if __name__ == "__main__":
    main()
