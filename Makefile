# The two commands: `make run` (server with demo data on http://127.0.0.1:5000)
# and `make test` (every test). `make bench` runs the benchmarks; `make bench-scale`
# adds PostgreSQL at a million documents.
VENV ?= .venv
GED = $(VENV)/bin/ged
HOST ?= 127.0.0.1
PORT ?= 5000
# The e-mail drop receiver; a second instance on the same machine needs another.
SMTPD_LISTEN ?= $(or $(GED_SMTPD_LISTEN),127.0.0.1:2525)

.PHONY: run test bench bench-scale setup setup-test

run: setup
	$(GED) init
	$(GED) demo
	$(GED) serve --host $(HOST) --port $(PORT) --smtpd-listen $(SMTPD_LISTEN)

test: setup-test
	scripts/test.sh $(ARGS)

bench: setup-test
	$(VENV)/bin/python -m bench $(ARGS)

# PostgreSQL at 1,000,000 documents (issue 10), merged into BENCHMARKS.md.
bench-scale: setup-test
	$(VENV)/bin/python -m bench --only pg_scale $(ARGS)

setup:
	scripts/setup.sh run

setup-test:
	scripts/setup.sh test
