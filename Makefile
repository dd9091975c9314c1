# The two commands of a fresh machine: `make install demo` runs the main job, `make install test`
# runs the tests. TORCH_SPEC picks the torch build (the default is the CUDA 13 wheel).
PY ?= python3
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PIP := $(PY) -m pip install --disable-pip-version-check
MAX_JOBS ?= 2
export MAX_JOBS

.PHONY: install test bench demo clean

install:
	$(PIP) $(TORCH_SPEC) ninja pybind11 setuptools wheel "cmake>=3.26"
	$(PIP) --no-build-isolation --use-pep517 -e ".[test,eval,dali]"
	$(PY) -c "import aft_fast.ops as o; b = o.build_info(); assert b['compiled'], b; print('aft_fast ops:', b)"

test:
	$(PY) -m pytest -q

bench:
	mkdir -p benchmarks/results
	$(PY) -m pytest benchmarks -q --benchmark-only --benchmark-json=benchmarks/results/pytest-benchmark-cpu.json

demo:
	$(PY) -m aft_fast.cli demo

clean:
	rm -rf build aft_fast/*.so *.egg-info
