# dkc — the two commands:
#   make demo   the whole study on the built-in tiny configuration (sets everything up first)
#   make test   every test: unit, parity with the reference fixtures, multi-rank under mpirun
# `make test` includes the Slurm tests (also alone: `make test-slurm`): a real one-node Slurm
# cluster on this machine (root; installs Slurm and munge if missing), dkc run through
# sbatch/srun/mpirun (self-test), the tiny study submitted with slurm/pipeline.sh, an array sweep and
# a preempted, requeued sweep (pipeline test), then the cluster is stopped.
# `make test` ends with the checked lane (also alone: `make test-checked`): CoreTests once more on a
# build with Swift's overflow, bounds and precondition checks on (docs/input-validation.md).
SHELL := /bin/bash
SWIFT ?= swift
# Tests run on an optimised build (the parity tests run real models); -enable-testing keeps @testable imports.
TEST_FLAGS := -c release -Xswiftc -enable-testing
# The checked lane: DKC_CHECKED=1 makes Package.swift compile -O instead of -Ounchecked; own scratch folder.
CHECKED_FLAGS := -c release -Xswiftc -enable-testing --scratch-path .build-checked
export OMPI_ALLOW_RUN_AS_ROOT ?= 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM ?= 1

.PHONY: all bootstrap build demo test test-checked test-slurm clean

all: build

bootstrap:
	@scripts/bootstrap --tests

build: bootstrap
	$(SWIFT) build -c release

demo:
	scripts/demo

test: bootstrap
	$(SWIFT) build $(TEST_FLAGS) --build-tests
	scripts/fetch-gpt2-tokenizer
	scripts/slurm-local-selftest "$$($(SWIFT) build $(TEST_FLAGS) --show-bin-path)/dkc"
	scripts/slurm-pipeline-test "$$($(SWIFT) build $(TEST_FLAGS) --show-bin-path)/dkc"
	$(SWIFT) test $(TEST_FLAGS) --skip-build --disable-swift-testing
	$(MAKE) --no-print-directory test-checked

test-checked:
	DKC_CHECKED=1 $(SWIFT) build $(CHECKED_FLAGS) --build-tests
	DKC_CHECKED=1 $(SWIFT) test $(CHECKED_FLAGS) --skip-build --disable-swift-testing --filter CoreTests

test-slurm:
	@scripts/bootstrap
	$(SWIFT) build -c release
	scripts/fetch-gpt2-tokenizer
	scripts/slurm-local-selftest "$$($(SWIFT) build -c release --show-bin-path)/dkc"
	scripts/slurm-pipeline-test "$$($(SWIFT) build -c release --show-bin-path)/dkc"

clean:
	rm -rf .build .build-checked
