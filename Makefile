.PHONY: run test
run:  ## install and start the whole system
	bash scripts/run.sh
test:  ## install and run the tests
	bash scripts/test.sh
