# zcrxprof — the two commands a user needs (README):
#   make run    set up everything, record a dataset (all four topologies) and write its report
#   make test   set up everything, then run the whole test suite (.ci/run calls exactly this)
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup setup-lab loadgen run test bench clean

setup:
	@scripts/setup.sh

setup-lab:
	@scripts/setup.sh --lab

loadgen:
	@$(MAKE) -s -C loadgen

run: setup
	@scripts/run.sh

test: setup-lab
	@scripts/test.sh $(PYTEST_ARGS)

# every bench/*.py but the 30-minute soak (README: run bench/soak.py on its own)
BENCHES := $(sort $(filter-out bench/soak.py,$(wildcard bench/*.py)))

bench: setup-lab
	@for b in $(BENCHES); do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	@$(MAKE) -s -C loadgen clean
	rm -rf .build .venv .pytest_cache
