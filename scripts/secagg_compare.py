"""Secure aggregation for prifft on Flower, measured: prifft's pairwise masks (fixed point, 24
fractional bits, exact sums) against Flower SecAgg+'s quantisation (its own quantize/dequantize:
clipping to ±8, 2^22 levels, stochastic rounding), on the real uploads of FedProc rounds.

SecAgg+ carries one vector per client within ±8, so the uploads are packed as a serious user
would: every entry divided by N = the training set's size (a public bound), so size-weighted
weights, class sums and counts all fit. Both runs follow `prifft fl`'s schedule from the same
start; the script prints per round the largest difference of the averaged weights from the exact
(float64) average and the test accuracy each way.

    python scripts/secagg_compare.py [--rounds 3] [--clients 10]   # needs prifft[flower]
"""

import argparse

import numpy as np
from flwr.common.secure_aggregation.quantization import dequantize, quantize

import prifft
from prifft.fl import FedProcServer, split_totals, upload_vector


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    np.random.seed(args.seed)
    train, test = prifft.load_fashion_mnist()
    parts = prifft.partition(train, args.clients, 0.5, args.seed)
    scale = float(len(train))
    models, plan = {}, None
    servers = {}
    for way in ("exact", "prifft-masks", "secagg+"):
        models[way], plan = prifft.schedule("fedproc", args.seed, args.clients, args.rounds)
        servers[way] = FedProcServer(train.classes)
        uploads = [models[way].class_sums(train, p) for p in parts]
        servers[way].update([s for s, _ in uploads], [n for _, n in uploads])
    shapes = [w.shape for w in models["exact"].get_weights()]
    print("round | max |Δw| masks | max |Δw| SecAgg+ | accuracy exact / masks / SecAgg+")
    for r in range(args.rounds):
        row = {}
        for way, model in models.items():
            server = servers[way]
            alpha = server.alpha(r, args.rounds)
            vectors = []
            for client, seed in plan[r]:
                local = model.local_update(train, parts[client], algo="fedproc", seed=seed,
                                           alpha=alpha, prototypes=server.prototypes)
                sums, counts = local.class_sums(train, parts[client])
                vectors.append(upload_vector(local.get_weights(), len(parts[client]), sums, counts))
            if way == "exact":
                totals = np.sum(vectors, axis=0)
            elif way == "prifft-masks":
                people = [prifft.SecAggParticipant(i) for i in range(len(vectors))]
                keys = [p.public_key for p in people]
                session = prifft.secagg_session_id()
                masked = [p.mask(v, keys, session, r) for p, v in zip(people, vectors)]
                totals = prifft.secagg_aggregate(masked, len(vectors))
            else:
                q = quantize([v / scale for v in vectors], 8.0, 2**22)
                # The server sums the quantised vectors (mod 2^32 in SecAgg+; no wrap here) and
                # removes the n clients' shifts, as SecAgg+'s workflow does.
                summed = np.sum([x.astype(np.int64) for x in q], axis=0)
                totals = (dequantize([summed], 8.0, 2**22)[0] - 8.0 * (len(vectors) - 1)) * scale
            averaged, _ = split_totals(totals, shapes, server)
            model.set_weights(averaged)
            row[way] = (averaged, model.evaluate(test))
        diff = lambda way: max(float(np.max(np.abs(a - b))) for a, b in zip(row[way][0], row["exact"][0]))
        print(f"{r + 1:5d} | {diff('prifft-masks'):.2e} | {diff('secagg+'):.2e} | "
              f"{row['exact'][1]:.4f} / {row['prifft-masks'][1]:.4f} / {row['secagg+'][1]:.4f}")


if __name__ == "__main__":
    main()
