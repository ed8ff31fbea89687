"""Sizing the next smooth-function construction (docs/protocols.md, "A table of high bits,
sized"): a DPF table indexed by the high b bits of the masked input, without a borrow key.

With x̂ = x + r opened on m bits and r = r_hi·2^k + r_lo (k = m − b), the public x̂_hi − r_hi
is floor(x / 2^k) or one more, so the entry it selects must be right on a window two cells wide
around its cell: entry j holds a degree-d polynomial in u = x − j·2^k, u ∈ [−2^k, 2^k). One DPF
on b bits with payload (1, r_lo, …, r_lo^d) then gives the polynomial exactly (the powers of
x̂_lo are public), plus one exact shift of the result.

For each function this prints, per degree d, the smallest b whose worst window error (least
squares on 257 points per window, f64) is within half the function's accuracy target, and the
key bytes per element that implies: DPF 16 + 16·(b − 1) + 8·(d + 1), the mask share 8, and the
comparison-based exact shift 16·(s − 7) + 32 at s = 24. Run: python3 scripts/lut_window_fit.py
"""

import math

import numpy as np

F = 16  # fractional bits
SHIFT_KEY = 16 * (24 - 7) + 32


def phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def Phi(x):
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


FUNCS = {
    # name: (f, signed input width m, [lo, hi) range of interest, tolerance, relative?)
    "gelu": (lambda x: x * Phi(x), 24, (-128, 128), 2.0**-10, False),
    "gelu'": (lambda x: Phi(x) + x * phi(x), 24, (-128, 128), 2.0**-12, False),
    "exp (x ≤ 0)": (lambda x: np.exp(np.minimum(x, 0)), 26, (-512, 0), 2.0**-13, False),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), 24, (-128, 128), 2.0**-11, False),
    "tanh": (np.tanh, 24, (-128, 128), 2.0**-11, False),
    "reciprocal": (lambda x: 1 / x, 24, (1 / 16, 32), 2.0**-11, True),
    "rsqrt": (lambda x: 1 / np.sqrt(x), 28, (2.0**-6, 2.0**8), 2.0**-11, True),
}


def worst(f, m, lo, hi, tol_rel, b, d):
    k = m - b
    cell = 2.0 ** (k - F)
    js = np.arange(math.floor(lo / cell), math.ceil(hi / cell) + 1)
    err = 0.0
    for j in js:
        a, z = (j - 1) * cell, (j + 1) * cell
        a, z = max(a, lo), min(z, hi)
        if z <= a:
            continue
        u = np.linspace(a, z, 257)
        y = f(u)
        c = np.polyfit(u - j * cell, y, d)
        e = np.abs(np.polyval(c, u - j * cell) - y)
        if tol_rel:
            e = e / np.abs(y)
        err = max(err, float(e.max()))
    return err


def main():
    print("function      | d | smallest b | worst error / half target | key B (DPF + mask + shift) | AES per element ≈ 2^b·(1 + (d+1)/2)")
    for name, (f, m, (lo, hi), tol, rel) in FUNCS.items():
        for d in (1, 2, 3):
            for b in range(6, 15):
                e = worst(f, m, lo, hi, rel, b, d)
                if e <= tol:
                    key = 16 + 16 * (b - 1) + 8 * (d + 1) + 8 + SHIFT_KEY
                    aes = 2**b * (1 + (d + 1) / 2)
                    print(f"{name:13s} | {d} | {b:10d} | {e / tol:25.2f} | {key:26d} | {aes:8.0f}")
                    break
            else:
                print(f"{name:13s} | {d} | > 14       |")


if __name__ == "__main__":
    main()
