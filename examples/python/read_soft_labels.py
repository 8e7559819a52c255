#!/usr/bin/env python3
"""Read retort soft-label shards into numpy arrays for a PyTorch-style training loop.

    python3 examples/python/read_soft_labels.py out/soft [--temperature 2] [--batch-size 32]

A shard folder is what a `teacher` stage wrote through `parquet_sink`: `part-*.parquet` files
(plus `_SUCCESS.json`, `_progress/` and `_rejects/`, which pyarrow skips because their names
start with `_`). Columns used: `text`, `label` (may be null), `teacher_logits`
(fixed_size_list<float32, C>, raw logits at temperature 1), `id`, `parent_id`. The schema's
metadata holds `label_names` and `retort.teacher` (which model wrote the logits).

Only pyarrow and numpy are needed. With PyTorch, wrap the arrays with `torch.from_numpy`.
"""

import argparse
import json
import sys

import numpy as np
import pyarrow.dataset as ds


def load(folder):
    """Every row of a shard folder as numpy arrays (and the texts as a list)."""
    table = ds.dataset(folder, format="parquet").to_table()
    meta = table.schema.metadata or {}
    label_names = json.loads(meta.get(b"label_names", b"null") or b"null")
    teacher = json.loads(meta.get(b"retort.teacher", b"null") or b"null")

    logits_col = table.column("teacher_logits").combine_chunks()
    classes = logits_col.type.list_size
    has_soft = ~np.asarray(logits_col.is_null().to_numpy(zero_copy_only=False))
    # A null row's slots hold no meaningful values: fill them with zeros explicitly.
    flat = logits_col.fill_null([0.0] * classes) if not has_soft.all() else logits_col
    logits = flat.flatten().to_numpy().astype(np.float32).reshape(-1, classes)

    labels = np.full(len(table), -1, dtype=np.int64)
    if "label" in table.column_names:
        col = table.column("label").combine_chunks()
        valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False))
        labels[valid] = np.asarray(col.drop_null().to_numpy(), dtype=np.int64)

    return {
        "id": table.column("id").to_pylist(),
        "parent_id": table.column("parent_id").to_pylist()
        if "parent_id" in table.column_names
        else [None] * len(table),
        "text": table.column("text").to_pylist(),
        "label": labels,  # -1 where a row has no gold label
        "teacher_logits": logits,  # [rows, classes], float32
        "has_soft": has_soft,  # False where a row has no teacher logits
        "label_names": label_names,
        "teacher": teacher,
    }


def soft_targets(logits, temperature):
    """Teacher probabilities at a temperature, as the KD term uses them."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def batches(data, batch_size, temperature, seed=0):
    """One shuffled epoch of mini-batches: indices, gold labels, soft targets, masks."""
    order = np.random.default_rng(seed).permutation(len(data["label"]))
    targets = soft_targets(data["teacher_logits"], temperature)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield {
            "text": [data["text"][i] for i in idx],
            "label": data["label"][idx],
            "gold_mask": data["label"][idx] >= 0,
            "soft_targets": targets[idx],
            "soft_mask": data["has_soft"][idx],
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="a retort output folder with a teacher_logits column")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    data = load(args.folder)
    rows, classes = data["teacher_logits"].shape
    probs = soft_targets(data["teacher_logits"][data["has_soft"]], 1.0)
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-5):
        sys.exit("teacher probabilities do not sum to 1")
    agree = (probs.argmax(axis=1) == data["label"][data["has_soft"]])[
        data["label"][data["has_soft"]] >= 0
    ]
    steps = 0
    for batch in batches(data, args.batch_size, args.temperature):
        assert batch["soft_targets"].shape == (len(batch["text"]), classes)
        steps += 1
    print(f"rows {rows}")
    print(f"classes {classes} {data['label_names']}")
    print(f"with gold labels {int((data['label'] >= 0).sum())}")
    print(f"with teacher logits {int(data['has_soft'].sum())}")
    print(f"augmented rows {sum(p is not None for p in data['parent_id'])}")
    print(f"teacher agrees with gold {agree.mean():.4f}")
    print(f"batches of {args.batch_size} {steps}")
    members = (data["teacher"] or {}).get("members", [])
    print(f"teacher members {len(members)}")


if __name__ == "__main__":
    main()
