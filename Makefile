# tidbops.cluster: every target sets up what it needs (venv, engine, simulator image) itself.
#
#   make demo        simulator-backed local cluster on Docker (ENGINE=podman for Podman), status, smoke test
#   make deploy      real images: INVENTORY=inventories/local by default
#   make destroy     remove containers and network, keep data volumes
#   make test        lint, sanity, unit, simulator, Kubernetes validation, integration, molecule
#   make bench       benchmarks (not part of make test)
#   make dist        the collection tarball, dist/tidbops-cluster-<version>.tar.gz
#   make reliability only the reliability suite (fault matrix, faults, secrets, bad input; in make test)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
ENGINE ?= docker
INVENTORY ?= inventories/local
SIM_VERSION := $(shell cat tests/simulator/VERSION 2>/dev/null || echo 0)
SIM_IMAGE := localhost/tidbsim:$(SIM_VERSION)
PYTEST_ARGS ?=

export PATH := $(BIN):$(PATH)
# Interpreter discovery can pick a pyenv shim that names a Python which is not installed.
export ANSIBLE_PYTHON_INTERPRETER := $(BIN)/python
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Podman settings live outside /etc (tools/engine.sh); harmless for Docker.
export TIDBOPS_STATE ?= /var/lib/tidbops
export CONTAINERS_CONF ?= $(TIDBOPS_STATE)/podman/containers.conf
export CONTAINERS_STORAGE_CONF ?= $(TIDBOPS_STATE)/podman/storage.conf

.PHONY: help venv collections engine sim-image lint sanity unit k8s-validate integration reliability test \
        demo deploy destroy status bench dist clean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

$(BIN)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check pip==24.2
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

venv: $(BIN)/.installed collections

# Playbooks in this checkout resolve tidbops.cluster through this link (ansible.cfg).
collections: .collections/ansible_collections/tidbops/cluster
.collections/ansible_collections/tidbops/cluster:
	mkdir -p $(@D)
	ln -sfn ../../.. $@

engine:
	tools/engine.sh $(ENGINE)

sim-image: engine
	tests/simulator/image/build.sh $(ENGINE)

lint: venv
	ansible-lint
	antsibull-changelog lint
	$(BIN)/python tools/check_argument_specs.py

sanity: venv
	tools/sanity.sh

unit: venv
	pytest -m "not integration" -n 2 $(PYTEST_ARGS)

k8s-validate: venv
	tools/k8s-validate.sh

# Integration tests start containers from the simulator image on both engines.
integration: venv
	tools/engine.sh docker
	tools/engine.sh podman
	tests/simulator/image/build.sh docker
	tests/simulator/image/build.sh podman
	pytest -m integration -rA -n 2 --dist loadfile $(PYTEST_ARGS)

# Fault matrix, transient faults, interrupted deploy, rolling restart, secrets, bad input
# (benchmarks/README.md); make integration runs it too.
reliability: venv
	tools/engine.sh docker
	tests/simulator/image/build.sh docker
	pytest -m integration tests/integration/reliability $(PYTEST_ARGS)

test: lint sanity unit k8s-validate integration

# What users install (ansible-galaxy collection install dist/tidbops-cluster-*.tar.gz), and what
# execution-environment.yml builds on.
dist: venv
	rm -rf dist
	ansible-galaxy collection build --output-path dist .

demo: venv sim-image
	ansible-playbook -i inventories/$(if $(filter podman,$(ENGINE)),local-podman,local) \
	  -e @inventories/simulator.yml playbooks/site.yml
	ansible-playbook -i inventories/$(if $(filter podman,$(ENGINE)),local-podman,local) \
	  -e @inventories/simulator.yml playbooks/status.yml
	ansible-playbook -i inventories/$(if $(filter podman,$(ENGINE)),local-podman,local) \
	  -e @inventories/simulator.yml playbooks/smoke.yml

deploy: venv engine
	ansible-playbook -i $(INVENTORY) playbooks/site.yml

status: venv
	ansible-playbook -i $(INVENTORY) playbooks/status.yml

destroy: venv
	ansible-playbook -i $(INVENTORY) playbooks/destroy.yml

bench: venv
	tools/engine.sh docker
	tests/simulator/image/build.sh docker
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf .cache tests/output .pytest_cache dist
