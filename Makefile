.PHONY: run test chaos bench lint fmt typecheck cluster cluster-run cluster-down chaos-cluster db-ha db-ha-down
run:  ## install and start the whole system
	bash scripts/run.sh
test:  ## install and run the tests
	bash scripts/test.sh
chaos:  ## the full chaos run (kills every process kind, restarts RabbitMQ and PostgreSQL)
	bash scripts/services.sh && bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m chaos.run
cluster:  ## a local three-node RabbitMQ cluster (own namespaces, nodes and ports) beside the system broker
	bash scripts/services.sh && bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m devtools.cluster up
cluster-run: cluster  ## the whole system (make run) against the local cluster's three nodes
	CELERY_BROKER_URL="$$(.venv/bin/python -m devtools.cluster urls)" RABBITMQ_MANAGEMENT_URL=http://guest:guest@10.77.0.1:15672/api/ bash scripts/run.sh
cluster-down:  ## stop and remove only what `make cluster` started
	bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m devtools.cluster down
chaos-cluster: cluster db-ha  ## the chaos run on the cluster and the database pair: a broker node killed, one cut off, a host gone, the primary killed and switched back
	.venv/bin/python -m chaos.run --cluster --db-ha --orders $${ORDERS:-3000}
bench:  ## run the benchmark suite (as deployed: Flower, the live page in a browser, the proxy)
	bash scripts/services.sh && bash scripts/browser.sh && bash scripts/apt.sh nginx=nginx-light && bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m bench.run

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
db-ha:  ## local PostgreSQL HA: Patroni (etcd) primary + synchronous standby, HAProxy, PgBouncer; prints the URLs
	bash scripts/db_ha_deps.sh && bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m devtools.db_ha up
db-ha-down:  ## stop and remove only what `make db-ha` started
	bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m devtools.db_ha down
