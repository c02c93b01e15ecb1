"""Convert the npm package `hl7-dictionary` into the compact data files the validator ships.

The package (MIT, Fernando Serrano, https://github.com/fernandojsg/hl7-dictionary) holds the HL7 v2 segment,
datatype and message definitions of versions 2.1-2.7.1 as plain JavaScript object literals, and one set of
tables. The validator uses it as a second machine-readable source beside hl7apy: optionality (R, O, C, B/W),
repetitions and the standard's element names, plus table 0396 (coding systems).

    npm pack hl7-dictionary            # in a scratch folder: hl7-dictionary-1.0.1.tgz
    python tools/build_hl7_dictionary.py /tmp/hl7-dictionary-1.0.1.tgz

writes harness/hl7v2/validation/data/hl7-dictionary/{VERSION}.json.gz (one per version) and
coding-systems.json. Nothing is imported from node_modules; the .tgz is read with tarfile and each module's
object literal is parsed as JSON (the package's files are JSON after `var x =`).

Per version: segments {id: [[name, datatype, opt, rep], ...]} and datatypes {id: [[name, datatype, opt,
rep], ...]}, field/component n at index n-1; opt is the package's code as a letter (1 O, 2 R, 3 C, 4 B: the
package's "4" covers both B (backward compatible) and W (withdrawn)); rep 0 (unbounded) becomes -1.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "harness" / "hl7v2" / "validation" / "data" / "hl7-dictionary"
OPT = {1: "O", 2: "R", 3: "C", 4: "B"}
_VAR = re.compile(r"\s*var\s+\w+\s*=\s*")


def module_literal(text: str, where: str) -> dict:
    """The object literal of `var x = {...}; module.exports = x;` as a dict."""
    m = _VAR.match(text)
    end = text.rfind("module.exports")
    if not m or end < 0:
        raise SystemExit(f"{where}: not a 'var x = {{...}}; module.exports = x;' module")
    body = text[m.end() : end].rstrip().rstrip(";")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{where}: object literal is not JSON at line {exc.lineno}: {exc.msg}") from None


def _element(item: dict, where: str) -> list:
    opt = OPT.get(item.get("opt"))
    if opt is None:
        raise SystemExit(f"{where}: unknown opt {item.get('opt')!r}")
    rep = item.get("rep", 1)
    name = " ".join(str(item.get("desc") or "").split())
    return [name, item.get("datatype") or "", opt, -1 if rep == 0 else rep]


def convert(tgz: Path) -> dict[str, bytes]:
    files: dict[str, str] = {}
    with tarfile.open(tgz, "r:gz") as tar:
        meta = None
        for member in tar.getmembers():
            if not member.isfile():
                continue
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "package/package.json":
                meta = json.loads(data)
            elif member.name.startswith("package/lib/") and member.name.endswith(".js"):
                files[member.name[len("package/lib/") :]] = data.decode("utf-8")
    if meta is None or meta.get("name") != "hl7-dictionary":
        raise SystemExit(f"{tgz}: not the hl7-dictionary npm package")
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    provenance = {
        "package": f"hl7-dictionary@{meta['version']}",
        "license": meta.get("license"),
        "author": meta.get("author", {}).get("name"),
        "homepage": meta.get("homepage"),
        "tarball_sha256": digest,
        "built_by": "tools/build_hl7_dictionary.py",
    }
    out: dict[str, bytes] = {}
    versions = sorted({name.split("/", 1)[0] for name in files if "/" in name})
    for version in versions:
        segs = module_literal(files[f"{version}/segments.js"], f"{version}/segments.js")
        dts = module_literal(files[f"{version}/fields.js"], f"{version}/fields.js")
        doc = {
            "provenance": provenance,
            "version": version,
            "segments": {
                sid: [_element(f, f"{version} {sid}-{i}") for i, f in enumerate(s.get("fields") or [], 1)]
                for sid, s in sorted(segs.items())
            },
            "datatypes": {
                dt: [_element(c, f"{version} {dt}.{i}") for i, c in enumerate(d.get("subfields") or [], 1)]
                for dt, d in sorted(dts.items())
                if d.get("subfields")
            },
        }
        raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:  # mtime 0: the same bytes every build
            gz.write(raw)
        out[f"{version}.json.gz"] = buf.getvalue()
    tables = module_literal(files["tables.js"], "tables.js")
    systems = tables.get("396", {}).get("values", {})
    coding = {
        "provenance": provenance,
        "table": "0396",
        "values": {code: " ".join(str(label).split()) for code, label in sorted(systems.items())},
    }
    out["coding-systems.json"] = (
        json.dumps(coding, ensure_ascii=False, indent=0, sort_keys=True) + "\n"
    ).encode("utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tarball", type=Path, help="hl7-dictionary-X.Y.Z.tgz from `npm pack hl7-dictionary`")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args()
    if not args.tarball.is_file():
        print(f"{args.tarball}: no such file (run `npm pack hl7-dictionary` first)", file=sys.stderr)
        return 2
    written = convert(args.tarball)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(written.items()):
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
