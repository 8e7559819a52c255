# retort: the two commands a new machine needs are `make demo` and `make test`.

CARGO   ?= cargo
RETORT  := target/debug/retort
WORDNET := /usr/share/wordnet/data.noun

.PHONY: all build release demo test lint bench deps check-wordnet chain clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Installs what the tests and the demo need (Debian/Ubuntu, as root).
deps:
	@if [ ! -f $(WORDNET) ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base; \
	fi

check-wordnet:
	@if [ ! -f $(WORDNET) ]; then \
	  echo "error: WordNet 3.0 is not installed (needed by the synonym, perturb insert and eda stages)"; \
	  echo "hint: run \`make deps\` as root, or \`sudo apt-get install -y wordnet-base\`"; \
	  exit 1; \
	fi

# Runs real augmentation pipelines on the project's own fixture corpus and shows the output.
demo: check-wordnet build
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
	@echo "== Self-distillation: generation 0 on gold labels of the EDA corpus, generation 1 taught by it"
	@echo "   (evaluated on the fixture corpus itself: 240 rows are too few for a held-out split)"
	$(RETORT) selfdistill --data fixtures/reviews.parquet --eval fixtures/reviews.parquet \
	  --out out/demo/selfdistill --generations 1 --copies 2 --quiet \
	  --set epochs=5 --set batch_size=16 --set learning_rate=0.003 --set vocab_size=2000 --set embed_dim=64

# A chained example: each stage is a target whose output folder is complete once its
# `_SUCCESS.json` exists, so make reruns only what is out of date.
CHAIN ?= out/chain
chain: $(CHAIN)/shuffled/_SUCCESS.json
	$(RETORT) inspect $(CHAIN)/shuffled --samples 3

$(CHAIN)/synonyms/_SUCCESS.json: fixtures/reviews.parquet | build
	$(RETORT) stage synonym --input $< --output $(@D) --set copies=2 --set keep_original=true --quiet

$(CHAIN)/shuffled/_SUCCESS.json: $(CHAIN)/synonyms/_SUCCESS.json
	$(RETORT) stage shuffle --input $(<D) --output $(@D) --set keep_original=true --quiet

test:
	$(CARGO) fmt --check
	$(CARGO) test

lint:
	$(CARGO) clippy --all-targets -- -D warnings

bench: check-wordnet
	bash scripts/bench.sh

clean:
	rm -rf out
