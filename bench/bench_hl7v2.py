"""HL7 v2 codec throughput on the public corpus, against python-hl7 measured in the same run.

    .venv/bin/python bench/bench_hl7v2.py [--seconds 1.0] [--rounds 3]

Prints messages/s (one core, best of ``rounds``) for hot-path metadata (``meta.extract``), for full
tokenising (``Message.parse`` then every segment, field, repetition, component and subcomponent
materialised), and for ``hl7.parse``, with the ratios and the goals (tokenising >= 3x python-hl7,
metadata >= 20,000 msg/s). Exits 0 when the corpus is absent (nothing to measure), 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "hl7v2"
sys.path.insert(0, str(ROOT))

from harness.hl7v2.files import iter_messages  # noqa: E402
from harness.hl7v2.message import HL7ParseError, Message  # noqa: E402
from harness.hl7v2.meta import extract  # noqa: E402


def rate(fn: Callable[[bytes], object], payloads: list[bytes], seconds: float, rounds: int) -> float:
    """Best messages/s over rounds, each running the whole list repeatedly for about ``seconds``."""
    best = 0.0
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while True:
            for p in payloads:
                fn(p)
            done += len(payloads)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, done / elapsed)
    return best


def show(label: str, per_second: float) -> None:
    print(f"{label:<36}{per_second:>12,.0f} msg/s   {1e6 / per_second:8.1f} us/msg")


def full_tokenise(payload: bytes) -> object:
    return Message.parse(payload).tokenize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"skipped: public corpus not present at {CORPUS}")
        return 0
    import hl7  # python-hl7, the baseline

    all_payloads = [m.payload for m in iter_messages([CORPUS], on_error=lambda exc: None)]
    payloads = []
    for p in all_payloads:
        try:
            Message.parse(p)
        except HL7ParseError:
            continue  # deliberately broken delimiters: neither codec can tokenise them
        payloads.append(p)
    codecs = {p: Message.parse(p).codec for p in payloads}

    def python_hl7(payload: bytes) -> object:
        return hl7.parse(payload, encoding=codecs[payload])

    size = sum(map(len, payloads)) / len(payloads)
    print(f"corpus: {len(payloads)} messages (of {len(all_payloads)}), mean {size:.0f} bytes, {CORPUS}")
    meta_rate = rate(extract, all_payloads, args.seconds, args.rounds)
    tok_rate = rate(full_tokenise, payloads, args.seconds, args.rounds)
    base_rate = rate(python_hl7, payloads, args.seconds, args.rounds)
    show("meta.extract", meta_rate)
    show("Message.parse + tokenize (full)", tok_rate)
    show("python-hl7 hl7.parse (baseline)", base_rate)
    gb = [m.payload for m in iter_messages([ROOT / "fixtures" / "hl7v2"]) if not m.payload.isascii()]
    if gb:
        gb_meta = rate(extract, gb, args.seconds / 2, args.rounds)
        gb_tok = rate(full_tokenise, gb, args.seconds / 2, args.rounds)
        show("meta.extract, GBK/GB18030 fixtures", gb_meta)
        show("full tokenise, GBK/GB18030", gb_tok)
    print(f"ratio full tokenise / python-hl7: {tok_rate / base_rate:.1f}x (goal >= 3x)")
    print(f"ratio meta.extract / python-hl7:  {meta_rate / base_rate:.1f}x")
    ok = tok_rate >= 3 * base_rate and meta_rate >= 20_000
    print(f"goals (tokenise >= 3x python-hl7, metadata >= 20,000 msg/s): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
