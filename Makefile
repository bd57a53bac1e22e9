.PHONY: run test chaos bench lint fmt typecheck
run:  ## install and start the whole system
	bash scripts/run.sh
test:  ## install and run the tests
	bash scripts/test.sh
chaos:  ## the full chaos run (kills every process kind, restarts RabbitMQ and PostgreSQL)
	bash scripts/services.sh && bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m chaos.run
bench:  ## run the benchmark suite
	bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m bench.run

# Lint, format and type checks (pyproject.toml). PATHS narrows lint and fmt, e.g. `make fmt PATHS=clients`.
PATHS ?= .
lint:  ## ruff check + ruff format --check (both run; non-zero if either found something)
	bash scripts/venv.sh requirements-dev.txt
	.venv/bin/ruff check $(PATHS); s=$$?; .venv/bin/ruff format --check $(PATHS) && exit $$s
fmt:  ## apply ruff's safe fixes, format, then list what is left to fix by hand (rewrites files under PATHS)
	bash scripts/venv.sh requirements-dev.txt
	.venv/bin/ruff check --fix --exit-zero --silent $(PATHS)
	.venv/bin/ruff format $(PATHS)
	.venv/bin/ruff check $(PATHS)
typecheck:  ## mypy over the packages listed in pyproject.toml
	bash scripts/venv.sh requirements-dev.txt && .venv/bin/mypy
