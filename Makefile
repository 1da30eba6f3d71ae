# The commands a newcomer needs. Everything runs from a fresh clone on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PACKAGES := libs/domain contracts libs/runtime libs/membership_view services/membership services/evaluation services/feedback scenario

.PHONY: install up down clean test unit test-reliability lint run kafka postgres tools bench bench-quick system system-test asyncapi-schema

install: $(STAMP)

# Debian packages a fresh machine may lack: Java and Maven for the broker; for the tests
# also PostgreSQL, Prometheus (promtool) and Go (kustomize).
system:
	@deploy/system/ensure.sh
system-test:
	@deploy/system/ensure.sh test

$(STAMP): constraints.txt requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@start=$$SECONDS; \
	test -x $(PY) || python3 -m venv $(VENV); \
	$(PIP) install -q --upgrade pip; \
	$(PIP) install -q -c constraints.txt -r requirements-dev.txt $(foreach p,$(PACKAGES),-e $(p)); \
	echo "install: done in $$((SECONDS - start))s"
	@touch $(STAMP)

# kustomize renders the Kubernetes manifests the tests validate (built from the Go proxy).
KUSTOMIZE_VERSION := v5.7.1
tools: install system-test
	@test -x $(VENV)/bin/kustomize || GOBIN=$(abspath $(VENV)/bin) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

kafka: install system
	@deploy/kafka/kafka.sh fetch

postgres: system-test
	@deploy/postgres/local.sh ensure

# The AsyncAPI 3.0 JSON Schema the contract tests check the services' documents against:
# npm package @asyncapi/specs, pinned by version and sha512, fetched once (npm from Debian when missing).
asyncapi-schema:
	@deploy/asyncapi/fetch.sh

up: install kafka
	@deploy/local/stack.sh up

down:
	@deploy/local/stack.sh down

clean: down
	rm -rf .run

test: install system-test tools kafka postgres asyncapi-schema
	$(PY) -m pytest --ignore=tests/reliability

# Unit and contract tests only: no Kafka, no PostgreSQL; seconds (npm once, for the AsyncAPI schema).
unit: install asyncapi-schema
	$(PY) -m pytest tests/unit tests/contract

# The fault-injection suite (tests/reliability): real processes killed, restarted, fed poison.
test-reliability: install system-test kafka postgres
	$(PY) -m pytest tests/reliability -s

lint: install
	$(VENV)/bin/ruff check contracts libs services scenario tests deploy bench
	$(VENV)/bin/ruff format --check contracts libs services scenario tests deploy bench
	$(VENV)/bin/mypy

# The main job: a year of a city's union work, played as the outside systems would send it.
# The demo replays 2018, so feedback measures "overdue" against the replayed business time.
SCALE ?= 1
SEED ?= 2018
run: install kafka
	@FEEDBACK_OVERDUE_CLOCK=events FEEDBACK_OVERDUE_CHECK_SECONDS=1 deploy/local/stack.sh fresh
	$(PY) -m unionhub_scenario --seed $(SEED) --scale $(SCALE)

# Benchmarks (bench/README.md): the five scenarios against the raw client and a naive baseline.
bench: install kafka postgres
	$(PY) -m bench

# CI's smoke run of the same harness: small counts, figures printed, no verdicts.
bench-quick: install kafka postgres
	$(PY) -m bench --quick
