"""Collect the `bench_*.py` files of this folder as test modules, so `make bench`
(`pytest benchmarks --benchmark-only`) runs every pytest-benchmark suite here."""
import pytest


def pytest_collect_file(file_path, parent):
    # A file named on the command line is collected by pytest itself: only add the others.
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") \
            and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
