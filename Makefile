.PHONY: run test chaos bench
run:  ## install and start the whole system
	bash scripts/run.sh
test:  ## install and run the tests
	bash scripts/test.sh
chaos:  ## the full chaos run (kills every process kind, restarts RabbitMQ and PostgreSQL)
	bash scripts/services.sh && bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m chaos.run
bench:  ## run the benchmark suite
	bash scripts/venv.sh requirements-dev.txt && .venv/bin/python -m bench.run
