"""What comparing two runs found, and its renderings: HTML (offline), JUnit XML and JSON.

`collect` pairs the exchanges of run B with those of run A (or with the captured originals, A =
"capture") by item: the original exchange id, or the file message for file replays. A run that sent
an item more than once (resumed) is judged by its latest attempt. The HTML embeds its styles and its
latency chart as inline SVG: hospital networks are closed, nothing is fetched when it is opened.
"""

from __future__ import annotations

import html
import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.exchange import Exchange, iso_time
from harness.replay.comparators import comparator_for
from harness.replay.compare import CLASSES, Comparison, IgnoreRule, Observed
from harness.store import ExchangeFilter, Store

CAPTURE = "capture"


def parse_run_ref(text: str) -> int | str:
    """`capture` (or 0) for the captured originals, else a run id."""
    value = text.strip().lower()
    if value in (CAPTURE, "0", "originals"):
        return CAPTURE
    try:
        run_id = int(value)
    except ValueError:
        raise ValueError(f"run {text!r}: expected a run id or 'capture' (the captured originals)") from None
    if run_id < 0:
        raise ValueError(f"run {text!r}: run ids are positive")
    return run_id


@dataclass(slots=True)
class Result:
    key: str
    source: str
    message_type: str | None
    original: Exchange | None
    replay: Exchange | None
    comparison: Comparison

    @property
    def control_id(self) -> str | None:
        ex = self.replay or self.original
        return ex.control_id if ex else None

    def to_json(self) -> dict[str, Any]:
        o, r = self.original, self.replay
        return {
            "key": self.key,
            "source": self.source,
            "message_type": self.message_type,
            "original_id": o.id if o else None,
            "replay_id": r.id if r else None,
            "original_control_id": o.control_id if o else None,
            "replay_control_id": r.control_id if r else None,
            "original_outcome": o.outcome if o else None,
            "replay_outcome": r.outcome if r else None,
            "original_latency_ms": _round(o.latency_ms) if o else None,
            "replay_latency_ms": _round(r.latency_ms) if r else None,
            "original_response": _text(o.response) if o else None,
            "replay_response": _text(r.response) if r else None,
            **self.comparison.to_json(),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    return data.decode("utf-8", "replace").replace("\r", "\n").rstrip("\n")


@dataclass(slots=True)
class Report:
    a_label: str
    b_label: str
    run_id: int
    results: list[Result]
    selected: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c = Counter(r.comparison.classification for r in self.results)
        return {cls: c.get(cls, 0) for cls in CLASSES}

    @property
    def ok(self) -> bool:
        return all(not r.comparison.failed for r in self.results)

    def summary(self) -> dict[str, Any]:
        sent = sum(1 for r in self.results if r.replay is not None and not _local_error(r.replay))
        return {
            "run_id": self.run_id,
            "baseline": self.a_label,
            "compared": self.b_label,
            "selected": self.selected if self.selected is not None else len(self.results),
            "sent": sent,
            **self.counts(),
            "recovered": sum(1 for r in self.results if r.comparison.recovered),
            "ok": self.ok,
        }


def _local_error(ex: Exchange) -> bool:
    return ex.outcome == "error" and ex.response is None


def _item_key(ex: Exchange) -> str:
    key = (ex.meta.get("replay") or {}).get("item")
    if key:
        return key
    return f"x{ex.original_id}" if ex.original_id is not None else f"x{ex.id}"


def _latest(store: Store, run_id: int, masker: Any = None) -> dict[str, Exchange]:
    out: dict[str, Exchange] = {}
    for ex in store.query(ExchangeFilter(run_id=run_id, order="id")):
        out[_item_key(ex)] = _masked(masker, ex)  # later attempts replace earlier ones
    return out


def _masked(masker: Any, ex: Exchange) -> Exchange:
    """The exchange as the report may show it: masked when a masker is given. Pseudonyms are
    consistent, so masked originals and masked replies compare as the unmasked ones do."""
    if masker is None:
        return ex
    from harness.mask.exchange import mask_exchange

    return mask_exchange(masker, ex)


def observed(ex: Exchange | None) -> Observed | None:
    if ex is None:
        return None
    replay_meta = ex.meta.get("replay") or {}
    return Observed(
        ex.response,
        outcome=ex.outcome,
        error=ex.error,
        charset=ex.charset,
        control_id=ex.control_id,
        original_control_id=replay_meta.get("original_control_id", ex.control_id),
        latency_ms=ex.latency_ms,
        accept_response=ex.accept_response,
    )


def _source(ex: Exchange | None, key: str) -> str:
    if ex is not None:
        src = (ex.meta.get("replay") or {}).get("source")
        if src:
            return src
        if ex.original_id is None and ex.run_id is None:
            return f"exchange {ex.id}"
    return f"exchange {key[1:]}" if key.startswith("x") and key[1:].isdigit() else key


def retarget_ignores(params: dict[str, Any]) -> tuple[IgnoreRule, ...]:
    """A run re-targeted to another application/facility expects the ACK's sender (MSH-3/4) to differ."""
    rules = params.get("rules") or {}
    out = []
    if rules.get("retarget_app") is not None:
        out.append(IgnoreRule("MSH-3"))
    if rules.get("retarget_facility") is not None:
        out.append(IgnoreRule("MSH-4"))
    return tuple(out)


def collect(
    store: Store, a: int | str, b: int, ignore: Sequence[IgnoreRule] = (), *, masker: Any = None
) -> Report:
    """Compare run `b` against run `a` (or the captured originals) exchange by exchange; with `masker`
    (a `harness.mask.masker.Masker`) over masked exchanges, so nothing in the report is unmasked."""
    run_b = store.get_run(b)
    if run_b is None:
        raise ValueError(f"run {b} does not exist in {store.path}")
    if a != CAPTURE and store.get_run(int(a)) is None:
        raise ValueError(f"run {a} does not exist in {store.path}")
    ignore = (*ignore, *retarget_ignores(run_b.params))
    replays = _latest(store, b, masker)
    if a == CAPTURE:
        wanted = [ex.original_id for ex in replays.values() if ex.original_id is not None]
        originals: dict[str, Exchange] = {}
        for start in range(0, len(wanted), 500):
            for ex in store.query(ExchangeFilter(ids=wanted[start : start + 500])):
                originals[f"x{ex.id}"] = _masked(masker, ex)
        a_label = CAPTURE
    else:
        originals = _latest(store, int(a), masker)
        a_label = f"run {a}"
    comparators: dict[str, Any] = {}
    results: list[Result] = []
    for key in [*replays, *(k for k in originals if k not in replays)]:
        orig = originals.get(key)
        rep = replays.get(key)
        kind = (rep or orig).kind  # type: ignore[union-attr]
        if kind not in comparators:
            comparators[kind] = comparator_for(kind, ignore)
        if rep is None:
            cmp = Comparison("missing", note=f"not replayed in run {b}")
            cmp.original_code = orig.ack_code if orig else None
        else:
            cmp = comparators[kind].compare(observed(orig), observed(rep))
        results.append(
            Result(key, _source(rep or orig, key), (rep or orig).message_type, orig, rep, cmp)  # type: ignore[union-attr]
        )
    summary = run_b.summary or {}
    selected = summary.get("selected") if a == CAPTURE else None
    return Report(a_label, f"run {b}", b, results, selected=selected, params=run_b.params)


# JSON


def render_json(report: Report) -> str:
    return json.dumps(
        {
            "summary": report.summary(),
            "params": report.params,
            "results": [r.to_json() for r in report.results],
        },
        ensure_ascii=False,
        indent=1,
    )


# JUnit


def render_junit(report: Report) -> str:
    counts = report.counts()
    failures = counts["different"] + counts["missing"] + counts["new_error"]
    suite = ET.Element(
        "testsuite",
        name=f"replay {report.b_label} vs {report.a_label}",
        tests=str(len(report.results)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for r in report.results:
        ex = r.replay or r.original
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"replay.{(r.message_type or 'unknown').replace('^', '_')}",
            name=f"{r.source} [{r.control_id or '-'}]",
            time=f"{(ex.latency_ms or 0) / 1000:.6f}" if ex else "0",
        )
        c = r.comparison
        if c.failed:
            lines = [
                f"{c.classification}: original {c.original_code or '-'}, replay {c.replay_code or '-'}"
                + (f" ({c.note})" if c.note else "")
            ]
            lines += [f"{d.path}: {d.original!r} -> {d.replay!r}" for d in c.differences if not d.ignored]
            failure = ET.SubElement(case, "failure", message=lines[0], type=c.classification)
            failure.text = "\n".join(lines)
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"{c.classification}: {c.replay_code or '-'}"
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


# HTML


def _bins(values: Sequence[float], n: int = 24) -> list[float]:
    lo = max(min(values), 0.01)
    hi = max(max(values), lo * 1.0001)
    step = (math.log10(hi) - math.log10(lo)) / n
    return [10 ** (math.log10(lo) + i * step) for i in range(n + 1)]


def _histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    for v in values:
        v = max(v, edges[0])
        i = len(edges) - 2
        for j in range(len(edges) - 1):
            if v < edges[j + 1]:
                i = j
                break
        counts[i] += 1
    return counts


def latency_svg(a: Sequence[float], b: Sequence[float], a_label: str, b_label: str) -> str:
    """Both latency distributions on one log-scaled histogram, as self-contained SVG."""
    both = [*a, *b]
    if not both:
        return "<p>No latencies recorded.</p>"
    edges = _bins(both)
    ha, hb = _histogram(a, edges), _histogram(b, edges)
    fa = [c / max(len(a), 1) for c in ha]
    fb = [c / max(len(b), 1) for c in hb]
    top = max(fa + fb) or 1.0
    width, height, left, bottom = 720, 260, 50, 40
    plot_w, plot_h = width - left - 10, height - bottom - 20
    bw = plot_w / len(fa)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="latency distribution">',
        f'<line x1="{left}" y1="{20 + plot_h}" x2="{left + plot_w}" y2="{20 + plot_h}" stroke="#444"/>',
        f'<line x1="{left}" y1="20" x2="{left}" y2="{20 + plot_h}" stroke="#444"/>',
    ]
    for i, (x, y) in enumerate(zip(fa, fb, strict=True)):
        for k, (v, color) in enumerate(((x, "#4878cf"), (y, "#d65f5f"))):
            h = plot_h * v / top
            parts.append(
                f'<rect x="{left + i * bw + k * bw / 2:.1f}" y="{20 + plot_h - h:.1f}" '
                f'width="{bw / 2 - 1:.1f}" height="{h:.1f}" fill="{color}"/>'
            )
    for i in range(0, len(edges), 4):
        x = left + i * bw
        parts.append(
            f'<text x="{x:.1f}" y="{height - 22}" font-size="10" text-anchor="middle">{edges[i]:.3g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" font-size="11" text-anchor="middle">'
        "latency (ms, log scale)</text>"
    )
    parts.append(f'<text x="4" y="16" font-size="10">{top:.0%}</text>')
    for k, (label, color, vals) in enumerate(((a_label, "#4878cf", a), (b_label, "#d65f5f", b))):
        y = 30 + k * 16
        med = sorted(vals)[len(vals) // 2] if vals else None
        text = f"{html.escape(label)} (n={len(vals)}" + (
            f", median {med:.2f} ms)" if med is not None else ")"
        )
        parts.append(f'<rect x="{width - 260}" y="{y - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{width - 245}" y="{y}" font-size="11">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}th{background:#f0f0f0}
.exact,.equivalent{color:#2a7a2a}.different{color:#b36b00}
.missing,.new_error{color:#b00020;font-weight:bold}pre{margin:0;white-space:pre-wrap;font-size:12px}
.num{text-align:right}
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_html(report: Report) -> str:
    s = report.summary()
    counts = report.counts()
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Replay report: {_esc(report.b_label)} vs {_esc(report.a_label)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Replay report: {_esc(report.b_label)} vs {_esc(report.a_label)}</h1>",
        f"<p>Target: {_esc(report.params.get('target'))}. Selected {s['selected']}, sent {s['sent']}, "
        f"recovered (no reply or NAK before, accepted now) {s['recovered']}.</p>",
        "<table><tr>" + "".join(f"<th>{c}</th>" for c in CLASSES) + "</tr><tr>",
        "".join(f"<td class='num {c}'>{counts[c]}</td>" for c in CLASSES) + "</tr></table>",
        "<h2>By message type</h2><table><tr><th>message type</th>"
        + "".join(f"<th>{c}</th>" for c in CLASSES)
        + "<th>median latency before (ms)</th><th>median latency now (ms)</th></tr>",
    ]
    by_type: dict[str, list[Result]] = {}
    for r in report.results:
        by_type.setdefault(r.message_type or "(unknown)", []).append(r)
    for mtype, rows in sorted(by_type.items()):
        c = Counter(r.comparison.classification for r in rows)
        la = _median(r.original.latency_ms for r in rows if r.original)
        lb = _median(r.replay.latency_ms for r in rows if r.replay)
        out.append(
            f"<tr><td>{_esc(mtype)}</td>"
            + "".join(f"<td class='num {k}'>{c.get(k, 0)}</td>" for k in CLASSES)
            + f"<td class='num'>{_fmt(la)}</td><td class='num'>{_fmt(lb)}</td></tr>"
        )
    out.append("</table><h2>Latency distribution</h2>")
    out.append(
        latency_svg(
            [
                r.original.latency_ms
                for r in report.results
                if r.original and r.original.latency_ms is not None
            ],
            [r.replay.latency_ms for r in report.results if r.replay and r.replay.latency_ms is not None],
            report.a_label,
            report.b_label,
        )
    )
    out.append(
        "<h2>Differences</h2><p>Every difference that counts, with both values. Differences in ignored "
        "fields (MSH-7, MSH-10, MSA-2 through the id map, ERR timestamps and any --ignore) make an exchange "
        "equivalent and are listed in the JSON report.</p>"
        "<table><tr><th>message</th><th>type</th><th>class</th><th>ACK before</th>"
        "<th>ACK now</th><th>field</th><th>before</th><th>now</th><th>note</th></tr>"
    )
    shown = 0
    for r in report.results:
        c = r.comparison
        if c.classification in ("exact", "equivalent"):
            continue  # their differences are all ignored ones; the JSON report lists them
        diffs = [d for d in c.differences if not d.ignored] or [None]
        for d in diffs:
            shown += 1
            out.append(
                f"<tr><td>{_esc(r.source)}<br><small>{_esc(r.control_id)}</small></td>"
                f"<td>{_esc(r.message_type)}</td><td class='{c.classification}'>{c.classification}</td>"
                f"<td>{_esc(c.original_code)}</td><td>{_esc(c.replay_code)}</td>"
                + (
                    f"<td>{_esc(d.path)}</td>"
                    f"<td><pre>{_esc(d.original)}</pre></td><td><pre>{_esc(d.replay)}</pre></td>"
                    if d is not None
                    else "<td></td><td></td><td></td>"
                )
                + f"<td>{_esc(c.note)}</td></tr>"
            )
    if not shown:
        out.append("<tr><td colspan='9'>No differences.</td></tr>")
    out.append("</table>")
    out.append(f"<p><small>Generated {_esc(iso_time(_now()))}.</small></p></body></html>")
    return "\n".join(out)


def _median(values: Iterable[float | None]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    return vals[len(vals) // 2] if vals else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _now() -> float:
    import time

    return time.time()


def write_reports(
    report: Report,
    *,
    html_path: str | None = None,
    junit_path: str | None = None,
    json_path: str | None = None,
) -> list[str]:
    """Write the reports asked for (0600, folders created 0700; an existing report is rewritten);
    returns the paths written (raises OSError naming the file)."""
    from harness.private_files import write_private

    written = []
    for path, render in ((html_path, render_html), (junit_path, render_junit), (json_path, render_json)):
        if path:
            written.append(str(write_private(path, render(report), force=True)))
    return written
