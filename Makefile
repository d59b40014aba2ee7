# Top-level wrapper around CMake and ctest. See README.md.
BUILD ?= build
JOBS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:8080

.PHONY: all deps build run test test-asan test-tsan fuzz bench clean install

all: build

deps:
	@scripts/install-deps

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	$(BUILD)/talon-demo --listen $(LISTEN)

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@scripts/test-sanitizers

test-asan: deps
	TALON_SANITIZERS=address scripts/test-sanitizers

test-tsan: deps
	TALON_SANITIZERS=thread scripts/test-sanitizers

fuzz: deps
	scripts/fuzz

bench: deps build
	bench/run

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
