# dkc — the two commands:
#   make demo   the whole study on the built-in tiny configuration (sets everything up first);
#               make demo MODEL=tiny-llama (or tiny-phi) on a small Llama (Phi) model
#   make test   every test: unit, parity with the reference fixtures, multi-rank under mpirun
# `make test` includes the Slurm tests (also alone: `make test-slurm`): a real one-node Slurm
# cluster on this machine (root; installs Slurm and munge if missing), dkc run through
# sbatch/srun/mpirun (self-test), the tiny study submitted with slurm/pipeline.sh, an array sweep and
# a preempted, requeued sweep (pipeline test), then the cluster is stopped.
SHELL := /bin/bash
SWIFT ?= swift
# Tests run on an optimised build (the parity tests run real models); -enable-testing keeps @testable imports.
# The build keeps Swift's overflow, bounds and precondition checks on (-O, not -Ounchecked; Package.swift), so
# every test, the parser fuzz tests included, runs with them (docs/input-validation.md).
TEST_FLAGS := -c release -Xswiftc -enable-testing
export OMPI_ALLOW_RUN_AS_ROOT ?= 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM ?= 1

.PHONY: all bootstrap build demo demo-forget test test-slurm clean

all: build

bootstrap:
	@scripts/bootstrap --tests

build: bootstrap
	$(SWIFT) build -c release

# MODEL=tiny-llama or MODEL=tiny-phi runs the study on the small Llama / Phi models (docs/model-families.md).
MODEL ?= tiny
demo:
	MODEL=$(MODEL) scripts/demo

# The forgetting experiment on the tiny study (runs `make demo` first when needed; docs/forgetting.md).
demo-forget:
	scripts/demo-forget

test: bootstrap
	$(SWIFT) build $(TEST_FLAGS) --build-tests
	scripts/fetch-gpt2-tokenizer
	scripts/slurm-local-selftest "$$($(SWIFT) build $(TEST_FLAGS) --show-bin-path)/dkc"
	scripts/slurm-pipeline-test "$$($(SWIFT) build $(TEST_FLAGS) --show-bin-path)/dkc"
	$(SWIFT) test $(TEST_FLAGS) --skip-build --disable-swift-testing

test-slurm:
	@scripts/bootstrap
	$(SWIFT) build -c release
	scripts/fetch-gpt2-tokenizer
	scripts/slurm-local-selftest "$$($(SWIFT) build -c release --show-bin-path)/dkc"
	scripts/slurm-pipeline-test "$$($(SWIFT) build -c release --show-bin-path)/dkc"

clean:
	rm -rf .build
