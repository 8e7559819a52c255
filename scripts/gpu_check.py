#!/usr/bin/env python3
"""retort's GPU check: one run on a machine with an NVIDIA GPU, PyTorch and transformers
(no Rust, no network). Everything else comes from the bundle (scripts/gpu-bundle.sh).

It creates random-weight Hugging Face folders with PyTorch (BERT shaped like MiniLM-L6 and
like BERT-base, llama shaped like SmolLM2-135M), then measures on the same device:
  - teacher labelling tokens/s, retort vs PyTorch bf16 (same rows, batch and length);
  - device memory of retort's teacher under two token budgets;
  - generation tokens/s (retort `generate`; PyTorch `generate` as a reference);
  - LM soft-label positions/s (retort `lm_teacher` top-16; PyTorch bf16 forward + top-k);
  - training steps/s of `retort train` (PyTorch f32 AdamW as a reference);
  - logit parity: the carried teacher against its CPU logits from the build machine, and
    retort against PyTorch f32 on the random MiniLM.
It writes gpu-check.md (one table) and gpu-check.json to --out ($OUT), plus the logs.
`--device cpu --quick` runs the same steps on the CPU with small sizes (a dry run).
"""
import argparse
import glob
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import torch
from tokenizers import Tokenizer

MAX_LEN = 128
LABELS = ["negative", "positive"]


def log(msg):
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Check:
    def __init__(self, args):
        self.args = args
        self.bundle = os.path.abspath(args.bundle)
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.work = args.work or tempfile.mkdtemp(prefix="retort-gpu-check-")
        os.makedirs(self.work, exist_ok=True)
        self.dev = args.device
        self.torch_dev = "cuda" if args.device.startswith("cuda") else "cpu"
        self.rows = []  # (section, what, value, note)
        self.results = {}
        self.env = dict(os.environ)
        self.retort = self.find_retort()

    # ---- plumbing -------------------------------------------------------------------------
    def find_retort(self):
        plain = os.path.join(self.bundle, "retort")
        if os.path.exists(plain):
            return plain
        packed = os.path.join(self.bundle, "retort-cuda.xz")
        path = os.path.join(self.work, "retort")
        with lzma.open(packed) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(path, 0o755)
        # The CUDA 13 libraries (cudart, cublas, curand, nvrtc) come with PyTorch's wheels.
        libs = []
        for p in sys.path:
            libs += glob.glob(os.path.join(p, "nvidia", "cu13", "lib"))
            libs += glob.glob(os.path.join(p, "nvidia", "*", "lib"))
        libs = list(dict.fromkeys(libs))
        self.env["LD_LIBRARY_PATH"] = ":".join(libs + [self.env.get("LD_LIBRARY_PATH", "")])
        return path

    def run(self, name, args, timeout=900):
        """Runs retort; returns stdout. The command line and its output go to OUT/logs."""
        cmd = [self.retort] + args
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout)
        with open(os.path.join(self.out, "logs", f"{name}.log"), "w") as f:
            f.write(" ".join(cmd) + f"\n# exit {p.returncode} after {time.time() - t0:.1f} s\n")
            f.write(p.stdout[-20000:] + "\n--- stderr\n" + p.stderr[-20000:])
        if p.returncode != 0:
            raise RuntimeError(f"retort {args[0]} failed ({name}): {p.stderr.strip()[-600:]}")
        return p.stdout

    def row(self, section, what, value, note=""):
        self.rows.append((section, what, value, note))
        log(f"{section} | {what} | {value} | {note}")

    def section(self, name, fn):
        try:
            fn()
        except Exception as e:  # keep going: one failure must not lose the other numbers
            traceback.print_exc()
            self.row(name, "FAILED", type(e).__name__, str(e).replace("\n", " ")[:300])

    def sync(self):
        if self.torch_dev == "cuda":
            torch.cuda.synchronize()

    # ---- models ---------------------------------------------------------------------------
    def make_bert(self, name, hidden, layers, heads, inter):
        from transformers import BertConfig, BertForSequenceClassification

        folder = os.path.join(self.work, name)
        cfg = BertConfig(
            vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=inter, max_position_embeddings=512,
            num_labels=2, id2label=dict(enumerate(LABELS)),
            label2id={l: i for i, l in enumerate(LABELS)},
        )
        torch.manual_seed(0)
        BertForSequenceClassification(cfg).save_pretrained(folder, safe_serialization=True)
        shutil.copy(os.path.join(self.bundle, "minilm-tokenizer.json"),
                    os.path.join(folder, "tokenizer.json"))
        return folder

    def make_llama(self, layers):
        from transformers import LlamaConfig, LlamaForCausalLM

        folder = os.path.join(self.work, "smollm2-shaped")
        cfg = LlamaConfig(
            vocab_size=49152, hidden_size=576, intermediate_size=1536,
            num_hidden_layers=layers, num_attention_heads=9, num_key_value_heads=3,
            max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=100000.0,
            tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        )
        torch.manual_seed(0)
        LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
        shutil.copy(os.path.join(self.bundle, "smollm2-tokenizer.json"),
                    os.path.join(folder, "tokenizer.json"))
        template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                    "<|im_end|>\n{% endfor %}<|im_start|>assistant\n")
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump({"chat_template": template}, f)
        return folder

    # ---- data -----------------------------------------------------------------------------
    def texts(self, n):
        limit = [] if n is None else ["--limit", str(n)]
        out = self.run("export-texts", ["export", os.path.join(self.bundle, "texts.parquet"),
                                         "--columns", "text"] + limit)
        return [json.loads(l)["text"] for l in out.splitlines() if l.strip()]

    def encode(self, tok, texts):
        enc = tok.encode_batch(texts)
        width = max(len(e.ids) for e in enc)
        ids = [e.ids + [0] * (width - len(e.ids)) for e in enc]
        mask = [[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in enc]
        return torch.tensor(ids), torch.tensor(mask)

    def bert_tokenizer(self):
        tok = Tokenizer.from_file(os.path.join(self.bundle, "minilm-tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(MAX_LEN)
        return tok

    def retort_logits(self, name, folder, parquet, precision, device=None):
        o = os.path.join(self.work, f"soft-{name}")
        shutil.rmtree(o, ignore_errors=True)
        self.run(name, ["stage", "teacher", "--input", parquet, "--output", o,
                        "--set", f"model={folder}", "--device", device or self.dev,
                        "--precision", precision, "--quiet"])
        out = self.run(f"{name}-export", ["export", o, "--columns", "id,teacher_logits"])
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        return {r["id"]: r["teacher_logits"] for r in rows}

    # ---- checks ---------------------------------------------------------------------------
    def parity(self):
        parity = os.path.join(self.bundle, "parity.parquet")
        want = {}
        with open(os.path.join(self.bundle, "parity-cpu.jsonl")) as f:
            for l in f:
                r = json.loads(l)
                want[r["id"]] = r["teacher_logits"]
        teacher = os.path.join(self.bundle, "parity-teacher")
        for precision in ["f32", "bf16"]:
            got = self.retort_logits(f"parity-{precision}", teacher, parity, precision)
            worst = max(abs(a - b) for k in want for a, b in zip(want[k], got[k]))
            spread = max(abs(v) for k in want for v in want[k])
            self.row("parity", f"carried teacher, {self.dev} {precision} vs build-machine CPU",
                     f"{worst:.2e}", f"max |Δlogit| over {len(want)} rows (logits up to {spread:.2f})")
            self.results[f"parity_carried_{precision}"] = worst
        # The same checkpoint in PyTorch (retort writes BertForSequenceClassification folders):
        # f32 checks the interchange, pure bf16 shows what rounding every activation costs.
        from transformers import BertForSequenceClassification

        with open(os.path.join(teacher, "retort.json")) as f:
            max_len = json.load(f)["max_len"]
        tok = Tokenizer.from_file(os.path.join(teacher, "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_len)
        out = self.run("parity-rows", ["export", parity, "--columns", "id,text"])
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        ids, mask = self.encode(tok, [r["text"] for r in rows])
        for name, dtype in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
            model = BertForSequenceClassification.from_pretrained(teacher, dtype=dtype)
            model = model.to(self.torch_dev).eval()
            with torch.inference_mode():
                ref = model(input_ids=ids.to(self.torch_dev), attention_mask=mask.to(self.torch_dev),
                            token_type_ids=torch.zeros_like(ids).to(self.torch_dev)).logits.float().cpu()
            worst = max(abs(float(ref[i][c]) - want[r["id"]][c])
                        for i, r in enumerate(rows) for c in range(len(LABELS)))
            self.row("parity", f"carried teacher, PyTorch {self.torch_dev} {name} vs build-machine CPU",
                     f"{worst:.2e}", "the retort checkpoint loaded by transformers")
            self.results[f"parity_carried_torch_{name}"] = worst

        # retort against PyTorch f32 on the same random MiniLM and the same rows.
        folder = self.minilm
        tok = self.bert_tokenizer()
        out = self.run("parity-rows", ["export", parity, "--columns", "id,text"])
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        from transformers import BertForSequenceClassification

        model = BertForSequenceClassification.from_pretrained(folder).to(self.torch_dev).eval()
        ids, mask = self.encode(tok, [r["text"] for r in rows])
        with torch.inference_mode():
            ref = model(input_ids=ids.to(self.torch_dev), attention_mask=mask.to(self.torch_dev),
                        token_type_ids=torch.zeros_like(ids).to(self.torch_dev)).logits.float().cpu()
        ref = {r["id"]: ref[i].tolist() for i, r in enumerate(rows)}
        scale = float(torch.tensor(list(ref.values())).std())
        for precision in ["f32", "bf16"]:
            got = self.retort_logits(f"parity-torch-{precision}", folder, parity, precision)
            worst = max(abs(a - b) for k in ref for a, b in zip(ref[k], got[k]))
            self.row("parity", f"random MiniLM, retort {self.dev} {precision} vs PyTorch f32",
                     f"{worst:.2e}", f"max |Δlogit|; logits' std {scale:.2e}")
            self.results[f"parity_torch_{precision}"] = worst
        if self.dev != "cpu":
            got = self.retort_logits("parity-own-cpu", folder, parity, "f32", device="cpu")
            worst = max(abs(a - b) for k in ref for a, b in zip(ref[k], got[k]))
            self.row("parity", "random MiniLM, retort cpu f32 (this machine) vs PyTorch f32",
                     f"{worst:.2e}", "")
        del model

    def teacher_speed(self, name, folder, batch):
        tok = self.bert_tokenizer()
        parquet = os.path.join(self.bundle, "texts.parquet")
        texts = self.texts(None)
        # PyTorch bf16: tokenization, forward, logits to the host, batch after batch.
        from transformers import BertForSequenceClassification

        dtype = torch.bfloat16 if self.torch_dev == "cuda" else torch.float32
        model = BertForSequenceClassification.from_pretrained(folder, dtype=dtype)
        model = model.to(self.torch_dev).eval()
        with torch.inference_mode():
            ids, mask = self.encode(tok, texts[:batch])
            model(input_ids=ids.to(self.torch_dev), attention_mask=mask.to(self.torch_dev))
            self.sync()
            t0 = time.perf_counter()
            tokens = 0
            for i in range(0, len(texts), batch):
                ids, mask = self.encode(tok, texts[i:i + batch])
                tokens += int(mask.sum())
                logits = model(input_ids=ids.to(self.torch_dev),
                               attention_mask=mask.to(self.torch_dev)).logits
                logits.float().cpu()
            self.sync()
            torch_tps = tokens / (time.perf_counter() - t0)
        del model
        if self.torch_dev == "cuda":
            torch.cuda.empty_cache()
        # retort: the teacher stage's own busy time and token count.
        report = self.teacher_run(f"teacher-{name}-{batch}", folder, parquet, batch)
        stage = next(s for s in report["stages"] if s["kind"] == "teacher")
        ours = stage["tally"]["counters"]["teacher_tokens"] / stage["busy_seconds"]
        prec = "bf16" if self.torch_dev == "cuda" else "f32"
        self.row("teacher", f"{name}: tokens/s, retort {prec}", f"{ours:,.0f}",
                 f"{len(texts)} rows × {MAX_LEN} tokens, {batch} rows per pass")
        self.row("teacher", f"{name}: tokens/s, PyTorch {prec}", f"{torch_tps:,.0f}",
                 f"retort/PyTorch = {ours / torch_tps:.2f}")
        self.results[f"teacher_{name}_{batch}"] = {"retort": ours, "torch": torch_tps}

    def teacher_run(self, name, folder, parquet, batch):
        o = os.path.join(self.work, f"out-{name}")
        shutil.rmtree(o, ignore_errors=True)
        peak = [0]
        stop = threading.Event()

        def used():
            q = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True)
            return int(q.stdout.split()[0]) if q.returncode == 0 and q.stdout.strip() else 0

        def poll():
            while not stop.is_set():
                peak[0] = max(peak[0], used())
                time.sleep(0.2)

        watcher = None
        base = 0
        if self.torch_dev == "cuda" and shutil.which("nvidia-smi"):
            base = used()
            watcher = threading.Thread(target=poll, daemon=True)
            watcher.start()
        try:
            out = self.run(name, ["stage", "teacher", "--input", parquet, "--output", o,
                                  "--set", f"model={folder}", "--set", f"batch_size={batch}",
                                  "--set", f"batch_tokens={batch * MAX_LEN}",
                                  "--batch-size", "4096", "--device", self.dev, "--json"])
        finally:
            stop.set()
            if watcher:
                watcher.join()
        report = json.loads(out)
        report["peak_mib"] = peak[0] - base if watcher else None
        return report

    def memory(self):
        if self.torch_dev != "cuda":
            return
        parquet = os.path.join(self.bundle, "texts.parquet")
        for batch in [64, 512]:
            r = self.teacher_run(f"memory-{batch}", self.base, parquet, batch)
            self.row("memory", f"BERT-base teacher, budget {batch * MAX_LEN:,} tokens",
                     f"{r['peak_mib']} MiB", "device memory in use at the peak, above idle")
            self.results[f"memory_{batch}"] = r["peak_mib"]

    def generation(self):
        folder = self.llama
        parquet = os.path.join(self.bundle, "parity.parquet")
        new = 16 if self.args.quick else 64
        prompts = 4 if self.args.quick else 16
        for threads in ["1", None]:
            o = os.path.join(self.work, f"gen-{threads}")
            shutil.rmtree(o, ignore_errors=True)
            args = ["stage", "generate", "--input", parquet, "--output", o,
                    "--set", f"model={folder}", "--set", f"prompts={prompts}",
                    "--set", f"max_new_tokens={new}", "--set", "min_words=1",
                    "--device", self.dev, "--json"]
            if threads:
                args += ["--threads", threads]
            report = json.loads(self.run(f"generate-{threads or 'all'}", args, timeout=1800))
            stage = next(s for s in report["stages"] if s["kind"] == "generate")
            tokens = stage["tally"]["counters"].get("generated_tokens", 0)
            tps = tokens / stage["busy_seconds"]
            self.row("generate", f"SmolLM2-shaped: tokens/s, retort, {threads or 'all'} thread(s)",
                     f"{tps:,.1f}", f"{tokens} tokens from {prompts} prompts, prefill included")
            self.results[f"generate_{threads or 'all'}"] = tps
        from transformers import LlamaForCausalLM

        dtype = torch.bfloat16 if self.torch_dev == "cuda" else torch.float32
        model = LlamaForCausalLM.from_pretrained(folder, dtype=dtype).to(self.torch_dev).eval()
        ids = torch.randint(3, 49152, (1, 200), generator=torch.Generator().manual_seed(0))
        ids = ids.to(self.torch_dev)
        kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=True, temperature=0.8,
                  top_p=0.95, pad_token_id=0)
        with torch.inference_mode():
            model.generate(ids, **kw)
            self.sync()
            t0 = time.perf_counter()
            model.generate(ids, **kw)
            self.sync()
        tps = new / (time.perf_counter() - t0)
        self.row("generate", "SmolLM2-shaped: tokens/s, PyTorch generate, batch 1",
                 f"{tps:,.1f}", "200-token prompt, prefill included")
        self.results["generate_torch"] = tps
        del model

    def lm_labels(self):
        """retort `lm_teacher` (top-16, 128 tokens a row) against a PyTorch loop that does the
        same work: forward pass, log-softmax and top-k on the device, labels to the host."""
        o = os.path.join(self.work, "lm-soft")
        shutil.rmtree(o, ignore_errors=True)
        parquet = os.path.join(self.bundle, "lm-texts.parquet")
        out = self.run("export-lm-texts", ["export", parquet, "--columns", "text"])
        texts = [json.loads(l)["text"] for l in out.splitlines() if l.strip()]
        rows = len(texts)
        args = ["stage", "lm_teacher", "--input", parquet, "--output", o,
                "--set", f"model={self.llama}", "--set", "mode=top_k", "--set", "k=16",
                "--set", f"max_tokens={MAX_LEN}", "--device", self.dev, "--json"]
        report = json.loads(self.run("lm-teacher", args, timeout=1800))
        stage = next(s for s in report["stages"] if s["kind"] == "lm_teacher")
        positions = stage["tally"]["counters"].get("lm_positions", 0)
        ours = positions / stage["busy_seconds"]
        self.row("lm_teacher", "SmolLM2-shaped: positions/s, retort top-16",
                 f"{ours:,.0f}", f"{rows} rows, {positions} positions")
        self.results["lm_teacher_retort"] = ours

        from transformers import LlamaForCausalLM

        dtype = torch.bfloat16 if self.torch_dev == "cuda" else torch.float32
        model = LlamaForCausalLM.from_pretrained(self.llama, dtype=dtype).to(self.torch_dev).eval()
        tok = Tokenizer.from_file(os.path.join(self.bundle, "smollm2-tokenizer.json"))
        tok.no_padding()
        enc = [[1] + e.ids[: MAX_LEN - 1] for e in tok.encode_batch(texts, add_special_tokens=False)]
        enc.sort(key=len)
        batch = 32

        def once():
            n = 0
            for i in range(0, len(enc), batch):
                part = enc[i:i + batch]
                width = max(len(e) for e in part)
                ids = torch.tensor([e + [0] * (width - len(e)) for e in part], device=self.torch_dev)
                mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in part],
                                    device=self.torch_dev)
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                logp = torch.log_softmax(logits, dim=-1)
                top = torch.topk(logp, 16, dim=-1)
                top.values.cpu(), top.indices.cpu()
                n += sum(len(e) for e in part)
            self.sync()
            return n

        with torch.inference_mode():
            once()
            t0 = time.perf_counter()
            n = once()
        theirs = n / (time.perf_counter() - t0)
        self.row("lm_teacher", "SmolLM2-shaped: positions/s, PyTorch forward + top-16",
                 f"{theirs:,.0f}", f"batch {batch}, {'bf16' if dtype == torch.bfloat16 else 'f32'}")
        self.results["lm_teacher_torch"] = theirs
        del model

    def training(self):
        batch = 32
        o = os.path.join(self.work, "train")
        shutil.rmtree(o, ignore_errors=True)
        self.run("train", ["train", "--data", os.path.join(self.bundle, "train.parquet"),
                           "--out", o, "--set", "student=bert", "--set", f"init={self.minilm}",
                           "--set", "epochs=1", "--set", f"batch_size={batch}",
                           "--set", f"max_len={MAX_LEN}", "--device", self.dev, "--quiet"],
                 timeout=3600)
        with open(os.path.join(o, "train_log.json")) as f:
            report = json.load(f)
        last = report["epochs"][-1]
        ours = len(last["step_losses"]) / last["seconds"]
        self.row("train", f"MiniLM-shaped student: steps/s, retort f32",
                 f"{ours:.2f}", f"batch {batch} × {MAX_LEN} tokens, {report['rows']} rows, 1 epoch")
        self.results["train_retort"] = ours
        # PyTorch f32 AdamW on the same shapes.
        from transformers import BertForSequenceClassification

        model = BertForSequenceClassification.from_pretrained(self.minilm).to(self.torch_dev)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
        tok = self.bert_tokenizer()
        texts = self.texts(batch * 8)
        steps = 4 if self.args.quick else 20
        batches = [self.encode(tok, texts[i:i + batch]) for i in range(0, len(texts), batch)]
        labels = torch.randint(0, 2, (batch,), generator=torch.Generator().manual_seed(0))

        def step(i):
            ids, mask = batches[i % len(batches)]
            loss = model(input_ids=ids.to(self.torch_dev), attention_mask=mask.to(self.torch_dev),
                         labels=labels.to(self.torch_dev)).loss
            loss.backward()
            opt.step()
            opt.zero_grad()

        for i in range(2):
            step(i)
        self.sync()
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        self.sync()
        theirs = steps / (time.perf_counter() - t0)
        self.row("train", "MiniLM-shaped student: steps/s, PyTorch f32 AdamW", f"{theirs:.2f}",
                 f"retort/PyTorch = {ours / theirs:.2f}")
        self.results["train_torch"] = theirs

    # ---- the whole check ------------------------------------------------------------------
    def main(self):
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        version = self.run("version", ["--version"]).strip()
        gpu = "none"
        if self.torch_dev == "cuda":
            gpu = torch.cuda.get_device_name(0)
        self.row("setup", "retort", version, f"device {self.dev}")
        self.row("setup", "GPU", gpu, f"PyTorch {torch.__version__}")
        log("creating random-weight models with PyTorch")
        self.minilm = self.make_bert("minilm-shaped", 384, 6, 12, 1536)
        self.base = None if self.args.quick else self.make_bert("bert-base-shaped", 768, 12, 12, 3072)
        self.llama = self.make_llama(2 if self.args.quick else 30)
        self.section("parity", self.parity)
        self.section("teacher", lambda: self.teacher_speed("MiniLM-shaped", self.minilm,
                                                           32 if self.args.quick else 256))
        if self.base:
            self.section("teacher", lambda: self.teacher_speed("BERT-base-shaped", self.base, 256))
            self.section("memory", self.memory)
        self.section("generate", self.generation)
        self.section("lm_teacher", self.lm_labels)
        self.section("train", self.training)
        self.write()

    def write(self):
        lines = ["| check | what | value | note |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows]
        table = "\n".join(lines) + "\n"
        with open(os.path.join(self.out, "gpu-check.md"), "w") as f:
            f.write(table)
        with open(os.path.join(self.out, "gpu-check.json"), "w") as f:
            json.dump({"rows": self.rows, "results": self.results}, f, indent=2)
        print(table)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.dirname(os.path.abspath(__file__)),
                    help="the folder scripts/gpu-bundle.sh wrote (default: this script's)")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu-check-out"))
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for a dry run")
    ap.add_argument("--quick", action="store_true", help="small sizes (for a CPU dry run)")
    ap.add_argument("--work", help="scratch folder (default: a new temporary one)")
    Check(ap.parse_args()).main()


if __name__ == "__main__":
    main()
