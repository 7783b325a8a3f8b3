# Convenience wrappers; dev.py does the work and needs only python3.
PY ?= python3

.PHONY: demo test setup lint
demo:
	$(PY) dev.py demo
test:
	$(PY) dev.py test
setup:
	$(PY) dev.py setup
lint:
	.venv/bin/ruff check edgekit tests benchmarks && .venv/bin/ruff format --check edgekit tests benchmarks
