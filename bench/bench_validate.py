"""HL7 v2 validation speed: this validator against hl7apy's strict parse+validate, measured in one run.

1. The public corpus (../shared/corpus/hl7v2): messages per CPU-second for hl7apy and for the
   harness (first pass with an empty value memo, and warm passes), and the ratios.
2. Typical ADT/ORU messages (generated, varied values): the harness on one core, and hl7apy on a sample.
3. Worker processes: the same batch with --jobs 1 and --jobs 2 (wall clock).
4. A synthetic capture (default 100,000 messages) written with harness.store into a temporary SQLite
   file and validated end to end by `harness validate --store FILE --jobs 2` in a child process.

CPU time (process_time) is used for the single-process rates so that other load on a shared machine
moves both sides alike; the --jobs and end-to-end figures are wall clock.

    .venv/bin/python bench/bench_validate.py [--capture N] [--typical N] [--quick]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = ROOT.parent / "shared" / "corpus" / "hl7v2"
SURNAMES = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何罗高林"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
DEPTS = ["0101", "0102", "0103", "0201", "0202", "0401", "0501"]
TESTS = [
    ("GLU", "葡萄糖", "mmol/L", "3.9-6.1"),
    ("K", "钾", "mmol/L", "3.5-5.3"),
    ("NA", "钠", "mmol/L", "137-147"),
    ("CREA", "肌酐", "umol/L", "57-111"),
    ("ALT", "丙氨酸氨基转移酶", "U/L", "9-50"),
    ("WBC", "白细胞", "10*9/L", "3.5-9.5"),
    ("HGB", "血红蛋白", "g/L", "130-175"),
]


def _ts(rng: random.Random) -> str:
    day = f"2024{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    return f"{day}{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}00"


def typical_message(i: int, rng: random.Random) -> bytes:
    """An ADT (A01/A04/A08/A03) or an ORU^R01 with 3-10 results, values varied like real traffic."""
    name = rng.choice(SURNAMES) + "^" + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
    pid = f"P{rng.randint(100000, 999999)}"
    ts = _ts(rng)
    dob = f"{rng.randint(1940, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    sex = rng.choice("MF")
    if rng.random() < 0.6:
        ev = rng.choice(["A01", "A04", "A08", "A03"])
        dept = rng.choice(DEPTS)
        struct = "ADT_A03" if ev == "A03" else "ADT_A01"
        segs = [
            f"MSH|^~\\&|HIS|H53010001|HC|H53010001|{ts}||ADT^{ev}^{struct}|M{i}|P|2.5|||AL|NE||UNICODE UTF-8",
            f"EVN|{ev}|{ts}",
            f"PID|1||{pid}^^^H53010001^MR||{name}||{dob}|{sex}|||云南省昆明市五华区^^昆明市^云南省^650000^CHN"
            f"||0871-{rng.randint(1000000, 9999999)}|||M||V{i}",
            f"PV1|1|{rng.choice('IOE')}|{dept}^{rng.randint(1, 40):02d}^{rng.randint(1, 3):02d}^H53010001"
            f"||||D{rng.randint(100, 999)}^{rng.choice(SURNAMES)}^医生|||{dept}||||1|||||V{i}",
        ]
        if ev in ("A01", "A03") and rng.random() < 0.5:
            segs.append(f"DG1|1||I{rng.randint(10, 99)}.{rng.randint(0, 9)}^诊断^I10|||A")
    else:
        segs = [
            f"MSH|^~\\&|LIS|H53010001|HIS|H53010001|{ts}||ORU^R01^ORU_R01|L{i}|P|2.5.1"
            "|||AL|NE||UNICODE UTF-8",
            f"PID|1||{pid}^^^H53010001^MR||{name}||{dob}|{sex}",
            f"OBR|1|O{i}|{rng.randint(10**11, 10**12 - 1)}|BIO^生化^L|||{ts}|||||||{ts}|||||||||||F",
        ]
        for k, (code, text, unit, ref) in enumerate(rng.sample(TESTS, rng.randint(3, 7)), 1):
            value = f"{rng.uniform(0.5, 200):.1f}"
            segs.append(f"OBX|{k}|NM|{code}^{text}^L||{value}|{unit}|{ref}|{rng.choice('NNNHL')}|||F|||{ts}")
    return ("\r".join(segs) + "\r").encode("utf-8")


def hl7apy_rate(texts: list[str]) -> float:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    start = time.process_time()
    for text in texts:
        try:
            parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()
        except Exception:  # noqa: BLE001 - invalid messages count too: the work was done
            pass
    return len(texts) / (time.process_time() - start)


def harness_rates(payloads: list[bytes], warm_passes: int = 3) -> tuple[float, float]:
    """(a pass with an empty value memo, warm passes) in messages per CPU-second; tables compiled first."""
    from harness.hl7v2.validation.fields import clear_memo
    from harness.hl7v2.validation.validator import Validator

    v = Validator()
    for p in payloads:  # compile the structures and rules of every version and segment in use
        v.validate(p)
    clear_memo()
    start = time.process_time()
    for p in payloads:
        v.validate(p)
    cold = len(payloads) / (time.process_time() - start)
    start = time.process_time()
    for _ in range(warm_passes):
        for p in payloads:
            v.validate(p)
    warm = len(payloads) * warm_passes / (time.process_time() - start)
    return cold, warm


def jobs_run(payloads: list[bytes], jobs: int) -> tuple[float, float]:
    """(messages per wall-clock second, CPU seconds of this process and its workers) for one batch."""
    import resource

    from harness.hl7v2.validation.batch import validate_many
    from harness.hl7v2.validation.fields import clear_memo

    items = [("bench", i, p, None) for i, p in enumerate(payloads)]
    clear_memo()  # workers fork from here: every run starts without remembered values
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = time.process_time()
    start = time.perf_counter()
    n = sum(1 for _ in validate_many(items, jobs=jobs))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu0 + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return n / wall, cpu


def build_capture(path: Path, count: int, rng: random.Random) -> None:
    from harness.exchange import Exchange
    from harness.store import Store

    with Store(path, synchronous="OFF") as store:
        batch = []
        t0 = 1_732_500_000.0
        for i in range(count):
            payload = typical_message(i, rng)
            if i % 20 == 7:  # one message in 20 carries a defect, as a real capture would
                payload = payload.replace(b"|19", b"|19991340", 1) if i % 40 == 7 else payload + b"ZZ1|x\r"
            mtype = payload.split(b"|", 9)[8].split(b"^")
            batch.append(
                Exchange(
                    channel="his-adt" if mtype[0] == b"ADT" else "lis-oru",
                    request=payload,
                    response=None,
                    message_type=f"{mtype[0].decode()}^{mtype[1].decode()}",
                    control_id=f"M{i}",
                    started_at=t0 + i * 0.01,
                    charset="utf-8",
                )
            )
            if len(batch) == 5000:
                store.add_many(batch)
                batch = []
        if batch:
            store.add_many(batch)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--capture", type=int, default=100_000, help="messages in the synthetic capture (0: skip)"
    )
    ap.add_argument("--typical", type=int, default=20_000, help="typical messages for rates and --jobs")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.capture, args.typical = min(args.capture, 5_000), min(args.typical, 5_000)
    rng = random.Random(20240301)
    from harness.hl7v2 import reference

    reference.load("2.5")
    reference.load("2.5.1")

    print("# HL7 v2 validation benchmark")
    if CORPUS.is_dir():
        from harness.hl7v2.files import iter_messages

        msgs = list(iter_messages([CORPUS], on_error=lambda exc: None))
        payloads = [m.payload for m in msgs]
        texts = [p.decode("utf-8", errors="replace") for p in payloads]
        base = hl7apy_rate(texts)
        cold, warm = harness_rates(payloads)
        print(
            f"corpus: {len(payloads)} messages, {sum(map(len, payloads)) // len(payloads)} bytes on average"
        )
        print(f"  hl7apy parse+validate (strict): {base:8.1f} msg/s")
        print(f"  harness, empty memo:            {cold:8.1f} msg/s   x{cold / base:6.1f}")
        print(f"  harness, warm passes:           {warm:8.1f} msg/s   x{warm / base:6.1f}")
    else:
        print(f"corpus: not present at {CORPUS}; skipped")

    typical = [typical_message(i, rng) for i in range(args.typical)]
    sample = [p.decode("utf-8") for p in typical[:150]]
    base_t = hl7apy_rate(sample)
    cold_t, warm_t = harness_rates(typical, warm_passes=1)
    print(
        f"typical ADT/ORU: {len(typical)} messages, {sum(map(len, typical)) // len(typical)} bytes on average"
    )
    print(f"  hl7apy parse+validate (strict, {len(sample)}): {base_t:8.1f} msg/s")
    print(f"  harness, one core, empty memo:  {cold_t:8.1f} msg/s   x{cold_t / base_t:6.1f}")
    print(f"  harness, one core, second pass: {warm_t:8.1f} msg/s   x{warm_t / base_t:6.1f}")

    import os

    batch = typical * 3
    r1, c1 = jobs_run(batch, 1)
    r2, c2 = jobs_run(batch, 2)
    n = len(batch)
    print(f"--jobs (wall clock, {n} messages incl. worker start-up; load average {os.getloadavg()[0]:.1f}):")
    print(
        f"  --jobs 1: {r1:8.1f} msg/s ({c1:.2f} CPU-s)   --jobs 2: {r2:8.1f} msg/s ({c2:.2f} CPU-s, "
        f"{c2 / (n / r2):.2f} cores busy)   scaling x{r2 / r1:.2f}"
    )

    if args.capture:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "capture.db"
            start = time.perf_counter()
            build_capture(db, args.capture, rng)
            built = time.perf_counter() - start
            print(
                f"capture: {args.capture} messages written to SQLite in {built:.1f} s (1 in 20 with a defect)"
            )
            report = Path(tmp) / "report.json"
            for jobs in (1, 2):
                cmd = [
                    sys.executable,
                    "-m",
                    "harness",
                    "validate",
                    "--store",
                    str(db),
                    "--jobs",
                    str(jobs),
                    "--format",
                    "json",
                    "--out",
                    str(report),
                    "--no-progress",
                ]
                start = time.perf_counter()
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                if proc.returncode not in (0, 1):
                    print(proc.stderr)
                    return 2
                import json

                summary = json.loads(report.read_text(encoding="utf-8"))["summary"]
                print(
                    f"  harness validate --store --jobs {jobs} --format json: {elapsed:.1f} s end to end "
                    f"({args.capture / elapsed:.0f} msg/s), {summary['invalid']} invalid, "
                    f"{summary['errors']} errors, {summary['warnings']} warnings"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
