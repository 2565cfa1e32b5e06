# The two commands of the README: `make demo` and `make test`. Each sets everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo

.PHONY: demo test test-newcomer install benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default, at 256x256 to fit about 10 minutes on 2 cores (512x512 takes 14).
demo: $(STAMP)
	$(BIN)/edgefusion-export compile --preset bk-sdm-tiny --target snapdragon --height 256 --width 256 -o $(DEMO_OUT)/bundle
	$(BIN)/edgefusion-export inspect $(DEMO_OUT)/bundle
	$(BIN)/edgefusion-export profile $(DEMO_OUT)/bundle -o $(DEMO_OUT)/profile
	$(BIN)/edgefusion-export generate $(DEMO_OUT)/bundle "a photo of a red fox in the snow" --seed 42 -o $(DEMO_OUT)/image.png
	$(BIN)/edgefusion-export package $(DEMO_OUT)/bundle android_app

GOLDEN := build/golden
MVN := mvn -B --no-transfer-progress -f android_app/pom.xml
QNN_EP = -Dqnn.ep.library=$$($(BIN)/python -c 'import onnxruntime_qnn; print(onnxruntime_qnn.get_library_path())')
WITHOUT_SHARED_DATA := EDGEFUSION_TEST_SHARED_DATA=none

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q
	$(BIN)/python -m tests.golden $(GOLDEN)
	$(MVN) test -Dgolden.dir=$(CURDIR)/$(GOLDEN) $(QNN_EP)

# What differs in a clone with nothing beside it (no ../shared/data), after `make test`: the tests that read the
# shared data skip, and the golden vectors and the Kotlin core's tests use the built-in vocabulary alone.
test-newcomer: $(STAMP)
	$(WITHOUT_SHARED_DATA) $(BIN)/python -m pytest -q tests/test_tokenizer.py
	$(WITHOUT_SHARED_DATA) $(BIN)/python -m tests.golden $(GOLDEN)-newcomer $(GOLDEN)/cache
	$(MVN) -pl core test -Dtest=GoldenTest -Dgolden.dir=$(CURDIR)/$(GOLDEN)-newcomer $(QNN_EP)

benchmark: $(STAMP)
	$(BIN)/python benchmarks/compile.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build android_app/core/target android_app/app/target
