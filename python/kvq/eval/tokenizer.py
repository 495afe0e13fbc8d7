"""The model's SentencePiece-style tokenizer, from the vocabulary and scores in the GGUF file.

This is llama.cpp's "SPM" scheme, the one the GGUF file names (``tokenizer.ggml.model = llama``):
spaces become U+2581, user-defined tokens (newline and tab runs, a few tags) are matched whole
first, then the characters of each remaining piece are merged pairwise, always the adjacent pair
whose merge is the vocabulary entry of highest score (leftmost on ties), and what is left without
a vocabulary entry falls back to byte tokens ``<0xXX>``.
"""
from __future__ import annotations

import heapq
from typing import Dict, List, Sequence

_SPACE = "\u2581"
_USER_DEFINED = 4


class Tokenizer:
    def __init__(self, tokens: Sequence[str], scores: Sequence[float], types: Sequence[int], bos: int) -> None:
        self.tokens = list(tokens)
        self.scores = list(scores)
        self.bos = bos
        self.index: Dict[str, int] = {}
        for i, t in enumerate(self.tokens):
            self.index.setdefault(t, i)
        self.byte_token = {b: self.index[f"<0x{b:02X}>"] for b in range(256) if f"<0x{b:02X}>" in self.index}
        # user-defined tokens, longest first so that "\n\n" wins over "\n"
        self.user_defined = sorted((t for t, ty in zip(self.tokens, types) if ty == _USER_DEFINED and t),
                                   key=len, reverse=True)

    def encode(self, text: str, add_bos: bool = True) -> List[int]:
        ids = [self.bos] if add_bos else []
        for piece, special in self._partition(text):
            ids.extend([self.index[piece]] if special else self._spm(piece.replace(" ", _SPACE)))
        return ids

    def _partition(self, text: str):
        """Splits out user-defined tokens, matched whole from left to right."""
        out, start, i = [], 0, 0
        firsts = {t[0] for t in self.user_defined}
        while i < len(text):
            if text[i] in firsts:
                hit = next((t for t in self.user_defined if text.startswith(t, i)), None)
                if hit is not None:
                    if start < i:
                        out.append((text[start:i], False))
                    out.append((hit, True))
                    i += len(hit)
                    start = i
                    continue
            i += 1
        if start < len(text):
            out.append((text[start:], False))
        return out

    def _spm(self, text: str) -> List[int]:
        symbols = list(text)
        n = len(symbols)
        if n == 0:
            return []
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        alive = [True] * n
        heap: list = []

        def push(left: int) -> None:
            right = nxt[left]
            if right >= n:
                return
            merged = symbols[left] + symbols[right]
            token = self.index.get(merged)
            if token is not None:
                heapq.heappush(heap, (-self.scores[token], left, merged))

        for i in range(n - 1):
            push(i)
        while heap:
            _, left, merged = heapq.heappop(heap)
            right = nxt[left] if alive[left] else n
            if right >= n or not alive[right] or symbols[left] + symbols[right] != merged:
                continue  # stale: one side was merged since
            symbols[left] = merged
            alive[right] = False
            nxt[left] = nxt[right]
            if nxt[left] < n:
                prev[nxt[left]] = left
            if prev[left] >= 0:
                push(prev[left])
            push(left)
        ids: List[int] = []
        i = 0
        while i < n:
            s = symbols[i]
            token = self.index.get(s)
            if token is not None:
                ids.append(token)
            else:
                ids.extend(self.byte_token[b] for b in s.encode("utf-8"))
            i = nxt[i]
        return ids
