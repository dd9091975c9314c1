# The two commands of a fresh machine: `make install demo` runs the main job, `make install test`
# runs the tests. TORCH_SPEC picks the torch build (the default is the CUDA 13 wheel).
PY ?= python3
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PIP := $(PY) -m pip install --disable-pip-version-check
MAX_JOBS ?= 2
export MAX_JOBS

.PHONY: install fashion-mnist test bench demo clean FORCE
EXT_STAMP := build/.installed-force-cuda-$(or $(FORCE_CUDA),auto)

install: $(EXT_STAMP)
	$(PY) -c "import aft_fast.ops as o; b = o.build_info(); assert b['compiled'], b; print('aft_fast ops:', b)"
	@$(MAKE) --no-print-directory fashion-mnist

# The editable install compiles the ops (~2.5 min on 2 cores): it runs again only when what it
# builds from (csrc/, setup.py, pyproject.toml, the FORCE_CUDA setting) changed since the last
# install here, the compiled module is gone (`make clean` forces it), or the installed package is
# not this clone (a moved or copied clone: the editable install points at the old path);
# otherwise it takes seconds.
INSTALLED_HERE := $(shell cd / && $(PY) -c "import aft_fast, os; print(os.path.dirname(os.path.realpath(aft_fast.__file__)))" 2>/dev/null)
$(EXT_STAMP): setup.py $(wildcard pyproject.toml) $(shell find csrc -type f) $(if $(wildcard aft_fast/_C*.so),,FORCE) $(if $(filter $(realpath aft_fast),$(INSTALLED_HERE)),,FORCE)
	$(PIP) $(TORCH_SPEC) ninja pybind11 setuptools wheel "cmake>=3.26"
	$(PIP) --no-build-isolation --use-pep517 -e ".[test,eval,dali,timm,examples,tensorboard,export]"
	@mkdir -p build && touch $@

FORCE:

# Fashion-MNIST's official idx files from Debian's package, where this user can install it (root
# with apt, as in CI); never fails the install (the data command's error says what to do).
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
fashion-mnist:
	@if [ -f $(FASHION_MNIST) ]; then echo "Fashion-MNIST: $(dir $(FASHION_MNIST))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } && \
	  echo "Fashion-MNIST: installed dataset-fashion-mnist" || \
	  echo "warning: apt-get could not install dataset-fashion-mnist; --data fashion-mnist will say how to point at the files"; \
	else echo "note: --data fashion-mnist needs: sudo apt-get install dataset-fashion-mnist (or AFT_FAST_FASHION_MNIST=DIR)"; fi

test:
	$(PY) -m pytest -q

bench:
	mkdir -p benchmarks/results
	$(PY) -m pytest benchmarks -q --benchmark-only --benchmark-json=benchmarks/results/pytest-benchmark-cpu.json

demo:
	$(PY) -m aft_fast.cli demo

clean:
	rm -rf build aft_fast/*.so *.egg-info
