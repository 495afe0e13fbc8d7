#!/usr/bin/env python3
"""Derive the NormalFloat signpost tables of spec S6.1 and print them.

Construction (S6.1), for b bits and L = 2^b levels:
  offset o = 1 - (1/(2L) + 1/(2L-2)) / 2
  P = L/2 positive signposts: Phi^-1(p) for the first P of L/2 + 1 points evenly spaced from o down to 1/2
  N = L/2 - 1 negative signposts: -Phi^-1(p) for the first N of L/2 points evenly spaced from o to 1/2
  plus an exact 0; everything divided by Phi^-1(o), so the extremes are exactly -1 and +1.
Each value is computed in double (Python's statistics.NormalDist) and rounded once to fp32.
Usage: gen_normalfloat.py [--c]   (--c prints C initialisers, default prints a Markdown table)
"""
import struct
import sys
from statistics import NormalDist


def fp32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def linspace(a, b, n):
    return [a + (b - a) * i / (n - 1) for i in range(n)]


def normalfloat(bits):
    levels = 1 << bits
    offset = 1.0 - 0.5 * (1.0 / (2 * levels) + 1.0 / (2 * levels - 2))
    inv = NormalDist().inv_cdf
    n_pos, n_neg = levels // 2, levels // 2 - 1
    pos = [inv(p) for p in linspace(offset, 0.5, n_pos + 1)[:n_pos]]
    neg = [-inv(p) for p in linspace(offset, 0.5, n_neg + 1)[:n_neg]]
    top = inv(offset)
    values = sorted([v / top for v in pos] + [0.0] + [v / top for v in neg])
    return [fp32(v) for v in values]


def main():
    as_c = '--c' in sys.argv
    for bits in (2, 3, 4):
        table = normalfloat(bits)
        if as_c:
            body = ', '.join(f'{v.hex()}f' if v != 0 else '0x0p+0f' for v in table)
            print(f'/* NF{bits} */ {{{body}}},')
        else:
            print(f'NF{bits}:')
            print('| j | signpost (fp32, hex) | decimal |')
            print('|---|---|---|')
            for j, v in enumerate(table):
                print(f'| {j} | `{float(v).hex()}` | {v:.9g} |')
            print()


if __name__ == '__main__':
    main()
