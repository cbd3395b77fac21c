# pocketstack: `make up` runs the cloud, `make test` runs the whole suite.
# Both set themselves up (a .venv with the project and its test tools).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
PIP     = $(BIN)/pip --disable-pip-version-check -q

.PHONY: up test tempest tempest-identity bench bench-image bench-compute bench-network bench-object bench-volume bench-real setup clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@$(PIP) install -e '.[test,postgresql,mysql]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -c "import pocketstack, starlette, sqlalchemy, bcrypt, openstack" 
	@touch $(STAMP)

setup: $(STAMP)

up: $(STAMP)
	$(BIN)/pocketstack up $(ARGS)

test: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then bash tools/install-system-deps.sh; fi
	$(BIN)/python -m pytest -n 2 --dist loadfile tests $(PYTEST_ARGS)

# Tempest (in its own venv under .tempest/) against a cloud it starts itself.
tempest: $(STAMP)
	$(BIN)/python tools/tempest.py $(LIST)

tempest-identity: $(STAMP)
	$(BIN)/python tools/tempest.py --regex '^tempest\.api\.identity'

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

# Image service: 1 GiB upload/download vs a local copy (ARGS=--quick: 256 MiB).
bench-image: $(STAMP)
	$(BIN)/python bench/image.py $(ARGS)

# Compute with the fake driver: boot latency, 100 concurrent boots, boot-and-delete, 10,000-server listing.
bench-compute: $(STAMP)
	$(BIN)/python bench/compute.py $(ARGS)

# Networking: port create latency / 16-client throughput and a 10,000-port listing (ARGS=--quick).
bench-network: $(STAMP)
	$(BIN)/python bench/network.py $(ARGS)

# Object storage: 4 KiB / 16 MiB PUT+GET and a 10,000-object listing vs upstream Swift (ARGS=--quick).
bench-object: $(STAMP)
	$(BIN)/python bench/object.py $(ARGS)

# Block Storage: create-to-available latency (p50/p99 of 50) and create-from-image MB/s vs cp (ARGS=--quick).
bench-volume: $(STAMP)
	$(BIN)/python bench/volume.py $(ARGS)

# Real instances (root + QEMU): boot-to-ping/SSH p50, guests per host, guest-to-guest vs veth throughput.
bench-real: $(STAMP)
	$(BIN)/python bench/real.py $(ARGS)

clean:
	rm -rf $(VENV) .tempest .pytest_cache
