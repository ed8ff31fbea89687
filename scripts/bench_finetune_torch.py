#!/usr/bin/env python3
"""PyTorch baseline for `prifft bench finetune`: the same plaintext BERT fine-tuning step.

One step = a batch of token sequences through the embeddings and every encoder layer (the
bottom n - k under torch.no_grad, in eval mode; the top k with dropout 0.1), mean pooling, a
Linear 384 -> 2 head, cross-entropy, backward through the top k layers and the head, and
torch.optim.SGD(momentum=0.9). A small post-LayerNorm BERT written here from the paper's
description (not the `transformers` package), on all-MiniLM-L6-v2's weights when
assets/minilm/model.safetensors exists, random weights of its shape otherwise.

Run by hand (not by CI), e.g. in a scratch virtual environment:
    python3 -m venv /tmp/xvenv && /tmp/xvenv/bin/pip install torch==2.0.1 "numpy<2" safetensors
    /tmp/xvenv/bin/python scripts/bench_finetune_torch.py --threads 2 --layers-trainable 0,1,2,6
and compare with `prifft bench finetune --layers-trainable 0,1,2,6` on the same machine.
"""
import argparse
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

D, HEADS, FFN, LAYERS, VOCAB, POS = 384, 12, 1536, 6, 30522, 512


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(D, eps=1e-12), nn.LayerNorm(D, eps=1e-12)
        self.fc1, self.fc2 = nn.Linear(D, FFN), nn.Linear(FFN, D)
        self.drop = nn.Dropout(0.1)

    def forward(self, x, mask_add):
        b, l, _ = x.shape
        split = lambda t: t.view(b, l, HEADS, D // HEADS).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(D // HEADS) + mask_add
        ctx = (self.drop(scores.softmax(-1)) @ v).transpose(1, 2).reshape(b, l, D)
        a = self.ln1(self.drop(self.o(ctx)) + x)
        return self.ln2(self.drop(self.fc2(F.gelu(self.fc1(a)))) + a)


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        self.word, self.pos, self.typ = nn.Embedding(VOCAB, D), nn.Embedding(POS, D), nn.Embedding(2, D)
        self.ln = nn.LayerNorm(D, eps=1e-12)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.drop = nn.Dropout(0.1)

    def load(self, path):
        from safetensors.torch import load_file
        w = load_file(path)
        self.word.weight.data, self.pos.weight.data = w["embeddings.word_embeddings.weight"], w["embeddings.position_embeddings.weight"]
        self.typ.weight.data = w["embeddings.token_type_embeddings.weight"]
        self.ln.weight.data, self.ln.bias.data = w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]
        names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
                 "fc1": "intermediate.dense", "fc2": "output.dense", "ln2": "output.LayerNorm"}
        for i, layer in enumerate(self.layers):
            for attr, name in names.items():
                m = getattr(layer, attr)
                m.weight.data = w[f"encoder.layer.{i}.{name}.weight"]
                m.bias.data = w[f"encoder.layer.{i}.{name}.bias"]

    def embed(self, ids):
        x = self.word(ids) + self.pos.weight[: ids.shape[1]] + self.typ.weight[0]
        return self.ln(x)


def step(model, head, opt, ids, mask, labels, k):
    mask_add = ((1.0 - mask) * torch.finfo(torch.float32).min)[:, None, None, :]
    n = LAYERS - k
    with torch.no_grad():
        model.eval()
        h = model.embed(ids) if k < LAYERS else None
        for layer in model.layers[:n]:
            h = layer(h, mask_add)
    model.train()
    if k == LAYERS:
        h = model.drop(model.embed(ids))
    for layer in model.layers[n:]:
        h = layer(h, mask_add)
    pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    loss = F.cross_entropy(head(pooled), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--layers-trainable", default="2")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--model", default="assets/minilm/model.safetensors")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = Bert()
    weights = "random"
    if os.path.exists(args.model):
        model.load(args.model)
        weights = "all-MiniLM-L6-v2"
    ids = torch.randint(1000, VOCAB, (args.batch, args.seq_len))
    mask = torch.ones(args.batch, args.seq_len)
    labels = torch.arange(args.batch) % 2
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
          f"L = {args.seq_len}, {weights} weights, median of {args.steps}:")
    for k in (int(x) for x in args.layers_trainable.split(",")):
        for p in model.parameters():
            p.requires_grad_(False)
        trainable = [p for layer in model.layers[LAYERS - k:] for p in layer.parameters()]
        if k == LAYERS:
            trainable += [model.word.weight, model.pos.weight, model.typ.weight, model.ln.weight, model.ln.bias]
        head = nn.Linear(D, 2)
        for p in trainable:
            p.requires_grad_(True)
        opt = torch.optim.SGD(trainable + list(head.parameters()), lr=1e-4, momentum=0.9)
        times = []
        for i in range(args.steps + 1):
            t = time.perf_counter()
            step(model, head, opt, ids, mask, labels, k)
            if i > 0:
                times.append(1e3 * (time.perf_counter() - t))
        print(f"  k = {k}: whole network forward + top {k} backward {statistics.median(times):.1f} ms")


if __name__ == "__main__":
    main()
