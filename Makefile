# The two commands of the README: `make demo` serves the embedded TPC-H demo, `make test` runs the tests.
# Both work in a virtualenv they create (.venv, Python 3.11 or newer), so a system Python that refuses
# `pip install` (Debian's, PEP 668) is never touched. PYTHON picks the interpreter the virtualenv is made from.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The virtualenv's commands (nexus-flight, roapi, moto_server, tpchgen-cli…) come first on PATH for the tests.
RUN := PATH="$(abspath $(VENV))/bin:$$PATH"

.PHONY: demo test install install-test

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Nexus Flight needs Python 3.11 or newer: make PYTHON=python3.11 …")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(PY)
	$(PIP) install -q -e .

# flightsql-dbapi pins SQLAlchemy < 2 for its SQLAlchemy dialect only; its DB-API and client (what the tests
# use) work with the SQLAlchemy 2 the catalog needs, so it is installed without its dependencies.
# The database servers come from Debian's packages; the tests start private instances of them. They come first:
# the mysql extra's driver (mariadb) builds against Debian's libmariadb-dev, which that script installs too.
# The JDBC, Java, Go and Rust clients are fetched and built once into ~/.cache/nexus-flight/clients.
install-test: $(PY)
	bash tests/install-servers.sh
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps 'flightsql-dbapi==0.2.2'
	$(RUN) bash tests/install-emulators.sh
	bash tests/install-clients.sh

demo: install
	$(RUN) nexus-flight serve

# The query pipeline and the shared vocabulary are type-checked strictly first (tests/typecheck.py).
test: install-test
	$(RUN) $(PY) tests/typecheck.py
	$(RUN) $(PY) -m pytest
