# Two commands: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DEBUG ?= 1

.PHONY: run test lint check-deploy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python manage.py runhq

# Browser tests use Debian's Chromium; install it when we can, otherwise they skip with the reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: browser tests will be skipped"; \
	  else echo "chromium is not installed and cannot be installed here: browser tests will be skipped"; fi; }

# The frontend protocols' own clients and schemas (AG-UI, the AI SDK), which the chat's stream tests run;
# and the OpenAPI tools the schema's tests run (Redocly's lint, openapi-typescript, openapi-fetch, tsc).
tests/clients/node_modules/.installed: tests/clients/package-lock.json
	npm ci --prefix tests/clients --no-audit --no-fund
	touch $@

test: $(VENV)/.installed-dev chromium tests/clients/node_modules/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

check-deploy: $(VENV)/.installed
	DEBUG=0 SECRET_KEY=$$(head -c 48 /dev/urandom | base64) ALLOWED_HOSTS=hq.example.com \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var/test-*.sqlite3 tests/clients/node_modules
