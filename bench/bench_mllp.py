"""MLLP decoding throughput: harness.mllp.MLLPDecoder against python-hl7's MLLP stream reader.

The proxy feeds the decoder every chunk a socket delivers, so decoding must stay far below the cost of
handling a message. Measured in this run, on the same 1 KB ADT^A01 frames cut three ways:

- one frame per chunk (a sender waiting for each ACK);
- 1,460-byte chunks (one TCP segment each: frames straddle chunks);
- 64 KiB chunks (a pipelining sender or a backlog: many frames per chunk).

Baselines: python-hl7's asyncio `MLLPStreamReader.readblock` (fed the same chunks; a block is read
whenever one is complete), and a per-byte state machine, the naive way to write an incremental decoder.
Run: `.venv/bin/python bench/bench_mllp.py [--frames N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from hl7.mllp.streams import MLLPStreamReader

from harness.mllp import Frame, MLLPDecoder, encode


def message(i: int) -> bytes:
    head = f"MSH|^~\\&|HIS|H1|HC|H2|20261125120000||ADT^A01^ADT_A01|{i}|P|2.5\rEVN|A01|20261125120000\r"
    pid = f"PID|1||{100000 + i}^^^H1^MR||DOE^JOHN||19800101|M|||1 MAIN ST^^CITY\r"
    body = (head + pid + "PV1|1|I|WARD^101^1|||||||MED\r").encode()
    return body + b"NTE|1||" + b"x" * (1024 - len(body) - 8) + b"\r"


def harness_decoder(chunks: list[bytes]) -> int:
    decoder = MLLPDecoder()
    count = 0
    for chunk in chunks:
        for event in decoder.feed(chunk):
            if type(event) is Frame:
                count += 1
    return count


def python_hl7(chunks: list[bytes]) -> int:
    async def run() -> int:
        reader = MLLPStreamReader()
        count = 0
        for chunk in chunks:
            reader.feed_data(chunk)
            while b"\x1c\r" in reader._buffer:
                await reader.readblock()
                count += 1
        return count

    return asyncio.run(run())


def per_byte(chunks: list[bytes]) -> int:
    state, buf, count = 0, bytearray(), 0
    for chunk in chunks:
        for b in chunk:
            if state == 0:
                if b == 0x0B:
                    state = 1
            elif state == 1:
                if b == 0x1C:
                    state = 2
                else:
                    buf.append(b)
            else:
                if b == 0x0D:
                    bytes(buf)
                    count += 1
                buf.clear()
                state = 0
    return count


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def timed(fn, chunks: list[bytes], expected: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        got = fn(chunks)
        best = min(best, time.perf_counter() - started)
        assert got == expected, (fn.__name__, got, expected)
    return expected / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    args = parser.parse_args()
    frames = [encode(message(i)) for i in range(args.frames)]
    data = b"".join(frames)
    cuts = {
        "one frame per chunk": frames,
        "1,460-byte chunks": cut(data, 1460),
        "64 KiB chunks": cut(data, 65536),
    }
    print(f"{args.frames} frames of {len(frames[0])} bytes")
    print(f"{'chunks':<22}{'decoder':<30}{'frames/s':>12}{'x python-hl7':>14}")
    for name, chunks in cuts.items():
        baseline = timed(python_hl7, chunks, args.frames)
        rows = [
            ("python-hl7 readblock", baseline),
            ("per-byte state machine", timed(per_byte, chunks, args.frames, repeat=1)),
            ("harness MLLPDecoder", timed(harness_decoder, chunks, args.frames)),
        ]
        for label, rate in rows:
            print(f"{name:<22}{label:<30}{rate:>12,.0f}{rate / baseline:>13.1f}x")


if __name__ == "__main__":
    main()
