# Pip-only set-up for machines without a ROS 2 install.
#   make demo   the end-to-end demo          make test   lint + the test suite
#   make demo SIM=mujoco  the demo with the robot simulated by MuJoCo
#   make bench  the benchmarks               make freeze re-pin constraints.txt
#   make mutants  mutation testing of the safety-critical code (TESTING.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SIM ?= pybullet

# DDS stays on this machine: discovery on loopback only, in a private domain,
# and rclpy logs inside the checkout instead of ~/.ros.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= 57
export ROS_LOG_DIR ?= $(CURDIR)/.ros_log

# Tests and benchmarks run in a network namespace of their own that has only loopback:
# nothing they start (DDS, Ray) can reach the network or be reached from it. Ray 2.58's
# servers listen on every interface whatever address they are given (README, Ray).
ISOLATE := unshare --net $(if $(filter 0,$(shell id -u)),,--map-root-user) \
	sh -c 'ip link set lo up && exec "$$@"' isolate

.PHONY: venv lint test demo bench mutants freeze clean

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# setup.cfg puts executables in lib/maml_ros (where `ros2 run` looks); link
	@# them into bin too, so an activated venv has them on PATH.
	cd $(VENV)/bin && ln -sf ../lib/maml_ros/* .
	touch $@

lint: venv
	$(VENV)/bin/ruff check .

# Three test processes on two cores: many tests wait on DDS, timers and child processes.
# One OpenMP thread each: torch's spinning thread pools cost a third more CPU in parallel.
TEST_WORKERS ?= 3

# Tests marked `alone` measure wall-clock tracking: they run afterwards, by themselves.
test: lint
	$(ISOLATE) env OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m 'not alone' test
	$(ISOLATE) env OMP_NUM_THREADS=1 $(PY) -m pytest -m alone test

demo: venv
	$(PY) -m maml_ros.cli.demo --simulator $(SIM) --plot demo.png

bench: venv
	$(PY) bench/maml_step.py
	$(PY) bench/meta_step_memory.py
	$(PY) bench/adaptation_latency.py
	$(PY) bench/control_loop.py
	$(PY) bench/sim_throughput.py
	$(PY) bench/sample_efficiency.py
	$(PY) bench/real_logs.py
	$(PY) bench/continual_adaptation.py
	$(ISOLATE) $(PY) bench/ray_collection.py

# Scope and tests: [mutmut] in setup.cfg. Not in CI (tens of minutes); TESTING.md has the score.
mutants: venv
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-mutants.txt -c constraints.txt
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

freeze: venv
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^maml' ; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) build install log .ros_log .pytest_cache *.egg-info mutants
