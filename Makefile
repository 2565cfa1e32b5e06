# The two commands of the README: `make demo` and `make test`. Each sets everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo

.PHONY: demo test install benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgefusion-export compile --preset bk-sdm-tiny --target cpu -o $(DEMO_OUT)/bundle
	$(BIN)/edgefusion-export inspect $(DEMO_OUT)/bundle
	$(BIN)/edgefusion-export generate $(DEMO_OUT)/bundle "a photo of a red fox in the snow" --seed 42 -o $(DEMO_OUT)/image.png

GOLDEN := build/golden
MVN := mvn -B --no-transfer-progress -f android_app/pom.xml

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q
	$(BIN)/python -m tests.golden $(GOLDEN)
	$(MVN) test -Dgolden.dir=$(CURDIR)/$(GOLDEN) \
		-Dqnn.ep.library=$$($(BIN)/python -c 'import onnxruntime_qnn; print(onnxruntime_qnn.get_library_path())')

benchmark: $(STAMP)
	$(BIN)/python benchmarks/compile.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build android_app/core/target android_app/app/target
