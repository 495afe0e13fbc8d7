"""The eval's SPM tokenizer on a toy vocabulary (the model's own is tested by the eval smoke, whose
perplexity depends on it), and the orderings check."""
from kvq.eval.cli import FULL4_KL_TOLERANCE, FULL4_PPL_TOLERANCE, check
from kvq.eval.tokenizer import Tokenizer


def _toy():
    tokens = ["<pad>", "<eos>", "<bos>", "\n", "\n\n", "a", "b", "c", "ab", "abc", "\u2581", "\u2581a", "bc"]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    scores = [0, 0, 0, 0, 0, -10, -11, -12, -5, -1, -20, -3, -2] + [0] * 256
    types = [3, 3, 3, 4, 4] + [1] * 8 + [6] * 256
    return Tokenizer(tokens, scores, types, bos=2)


def test_merges_by_score_and_byte_fallback():
    t = _toy()
    idx = t.index
    assert t.encode("abc", add_bos=False) == [idx["abc"]]
    # "bc" (-2) merges before "ab" (-5), then "a" + "bc" -> "abc" (-1); "a\u2581" and "\u2581b" are no tokens
    assert t.encode("a bc", add_bos=False) == [idx["a"], idx["\u2581"], idx["bc"]]
    assert t.encode(" a", add_bos=True) == [2, idx["\u2581a"]]
    # user-defined tokens are matched whole, longest first; unknown characters fall back to bytes
    assert t.encode("a\n\nb", add_bos=False) == [idx["a"], idx["\n\n"], idx["b"]]
    assert t.encode("\u00e9", add_bos=False) == [idx["<0xC3>"], idx["<0xA9>"]]


def _result(token, post, pre, full4, ratio=0.001, kl4=0.01):
    def row(name, ppl, kl, delta=0.0):
        return {"name": name, "ppl": ppl, "kl": kl, "ppl_delta": delta, "kvq_check_ratio": ratio}
    return {"results": [row("3b-token-post", token, 4.0), row("3b-calibrated-post", post, 0.7),
                        row("3b-calibrated-pre", pre, 0.2), row("4b-calibrated-pre-kmeans-1%-sink", 14.6, kl4, full4)]}


def test_check_orderings():
    assert check(_result(800, 29, 16, 0.012)) == []
    assert len(check(_result(40, 29, 16, 0.012))) == 1      # per-token not far worse
    assert len(check(_result(800, 16, 29, 0.012))) == 1     # pre-RoPE worse than post
    assert len(check(_result(800, 29, 16, FULL4_PPL_TOLERANCE))) == 1       # 4-bit recipe at the tolerance
    assert len(check(_result(800, 29, 16, 0.012, kl4=FULL4_KL_TOLERANCE))) == 1   # its KL at the tolerance
    assert len(check(_result(800, 29, 16, 0.012, ratio=1.5))) == 4  # numpy vs kvq attention
    assert check({"results": []})  # missing configurations are failures, not passes
