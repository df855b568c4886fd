# The two commands of the README: `make demo` serves the embedded TPC-H demo, `make test` runs the tests.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: demo test install install-test

install:
	$(PIP) install -e .

# flightsql-dbapi pins SQLAlchemy < 2 for its SQLAlchemy dialect only; its DB-API and client (what the tests
# use) work with the SQLAlchemy 2 the catalog needs, so it is installed without its dependencies.
# The database servers come from Debian's packages; the tests start private instances of them.
# The JDBC, Java, Go and Rust clients are fetched and built once into ~/.cache/nexus-flight/clients.
install-test:
	$(PIP) install -e '.[test]'
	$(PIP) install --no-deps 'flightsql-dbapi==0.2.2'
	bash tests/install-servers.sh
	bash tests/install-emulators.sh
	bash tests/install-clients.sh

demo: install
	nexus-flight serve

test: install-test
	$(PYTHON) -m pytest
