"""Message structure: segment order, groups, cardinality and required segments.

A structure (from the standard or a conformance profile) is compiled once into an NFA over
segment ids (Thompson construction; groups, repetition and choice become epsilon edges), and
the NFA is run as a lazily built DFA: each (state set, segment id) step is computed once per
structure and then is one dict lookup. Checking a message is therefore linear in its segments,
with no recursion per message.

Only when the DFA dies does the matcher diagnose: a 0-1 breadth-first search over the NFA finds
the fewest required segments that, if they were present, would let the offending segment in
(reported missing), or decides the segment is out of place, a repetition too many, or not part
of the structure at all; matching then resynchronises and goes on, so every problem is reported.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from harness.hl7v2.reference import ANY_SEGMENT
from harness.hl7v2.validation.findings import Finding, Location, finding

MAX_EXPANDED = 16  # finite max cardinalities above this are treated as unbounded


@dataclass(slots=True)
class _Edge:
    symbol: str
    target: int
    path: str  # group path + segment id, for messages


@dataclass
class Structure:
    """A compiled message structure; `check(ids)` returns findings for a list of segment ids."""

    name: str
    eps: list[list[int]] = field(default_factory=list)
    edges: list[list[_Edge]] = field(default_factory=list)
    start: int = 0
    final: int = 0
    alphabet: frozenset[str] = frozenset()
    has_any: bool = False
    _sets: dict = field(default_factory=dict)
    _set_list: list = field(default_factory=list)
    _step: dict = field(default_factory=dict)
    _accept: list = field(default_factory=list)

    # -- construction ---------------------------------------------------------------------

    def _new(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def _frag(self, node: tuple, path: str) -> tuple[int, int]:
        kind = node[0]
        if kind == "S":
            _, seg, lo, hi = node
            return self._repeat(lambda: self._seg(seg, path), lo, hi)
        _, gname, lo, hi, body = node
        return self._repeat(lambda: self._body(body, f"{path}{gname}."), lo, hi)

    def _seg(self, seg: str, path: str) -> tuple[int, int]:
        a, b = self._new(), self._new()
        self.edges[a].append(_Edge(seg, b, path + ("any segment" if seg == ANY_SEGMENT else seg)))
        return a, b

    def _body(self, body: tuple, path: str) -> tuple[int, int]:
        kind, children = body
        start = self._new()
        if kind == "choice":
            end = self._new()
            for child in children:
                a, b = self._frag(child, path)
                self.eps[start].append(a)
                self.eps[b].append(end)
            return start, end
        cur = start
        for child in children:
            a, b = self._frag(child, path)
            self.eps[cur].append(a)
            cur = b
        return start, cur

    def _repeat(self, make, lo: int, hi: int) -> tuple[int, int]:
        start = self._new()
        cur = start
        if hi != -1 and hi > MAX_EXPANDED:
            hi = -1
        for _ in range(lo):
            a, b = make()
            self.eps[cur].append(a)
            cur = b
        if hi == -1:
            loop = self._new()
            self.eps[cur].append(loop)
            a, b = make()
            self.eps[loop].append(a)
            self.eps[b].append(loop)
            return start, loop
        end = self._new()
        self.eps[cur].append(end)
        for _ in range(max(0, hi - lo)):
            a, b = make()
            self.eps[cur].append(a)
            self.eps[b].append(end)
            cur = b
        return start, end

    @classmethod
    def compile(cls, name: str, body: tuple) -> Structure:
        st = cls(name)
        st.start, st.final = st._body(body, "")
        alphabet = set()
        for out in st.edges:
            for e in out:
                alphabet.add(e.symbol)
        st.has_any = ANY_SEGMENT in alphabet
        alphabet.discard(ANY_SEGMENT)
        st.alphabet = frozenset(alphabet)
        st._intern(st._closure({st.start}))
        return st

    # -- lazy DFA -----------------------------------------------------------------------------

    def _closure(self, states) -> frozenset[int]:
        seen = set(states)
        stack = list(states)
        eps = self.eps
        while stack:
            for t in eps[stack.pop()]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def _intern(self, states: frozenset[int]) -> int:
        sid = self._sets.get(states)
        if sid is None:
            sid = self._sets[states] = len(self._set_list)
            self._set_list.append(states)
            self._accept.append(self.final in states)
        return sid

    def _move(self, states, seg: str) -> set[int]:
        nxt = set()
        for s in states:
            for e in self.edges[s]:
                if e.symbol == seg or (e.symbol == ANY_SEGMENT and seg != "MSH"):
                    nxt.add(e.target)
        return nxt

    def step(self, sid: int, seg: str) -> int:
        key = (sid, seg)
        got = self._step.get(key)
        if got is None:
            nxt = self._move(self._set_list[sid], seg)
            got = self._intern(self._closure(nxt)) if nxt else -1
            if len(self._step) < 200_000:
                self._step[key] = got
        return got

    def matches(self, ids: list[str]) -> bool:
        sid = 0
        step = self._step
        for seg in ids:
            nxt = step.get((sid, seg))
            if nxt is None:
                nxt = self.step(sid, seg)
            if nxt < 0:
                return False
            sid = nxt
        return self._accept[sid]

    # -- diagnosis ---------------------------------------------------------------------------

    def _resync(self, states, seg: str | None) -> tuple[list[str], int] | None:
        """Fewest required segments to skip so that `seg` (or the end, for None) is accepted."""
        dist: dict[int, int] = {}
        prev: dict[int, tuple[int, str | None]] = {}
        dq: deque[int] = deque()
        for s in states:
            dist[s] = 0
            dq.append(s)
        best = None
        while dq:
            s = dq.popleft()
            d = dist[s]
            if best is not None and d > best[1]:
                break
            if seg is None:
                if s == self.final:
                    best = (s, d)
                    break
            else:
                hit = [
                    e for e in self.edges[s] if e.symbol == seg or (e.symbol == ANY_SEGMENT and seg != "MSH")
                ]
                if hit:
                    best = (s, d)
                    break
            for t in self.eps[s]:
                if t not in dist or dist[t] > d:
                    dist[t] = d
                    prev[t] = (s, None)
                    dq.appendleft(t)
            for e in self.edges[s]:
                if e.target not in dist or dist[e.target] > d + 1:
                    dist[e.target] = d + 1
                    prev[e.target] = (s, e.path)
                    dq.append(e.target)
        if best is None:
            return None
        skipped: list[str] = []
        s = best[0]
        while s in prev and s not in states:
            s, label = prev[s]
            if label is not None:
                skipped.append(label)
        skipped.reverse()
        return skipped, best[0]

    def diagnose(self, ids: list[str], indexes: list[int]) -> list[Finding]:
        """Findings for a segment-id sequence that does not match (indexes: 1-based positions)."""
        out: list[Finding] = []
        states = self._set_list[0]
        n = len(ids)
        seen: set[str] = set()
        remaining: dict[str, int] = {}  # segment id -> occurrences after the current one
        for sid in ids:
            remaining[sid] = remaining.get(sid, 0) + 1
        for k, seg in enumerate(ids):
            pos = indexes[k]
            remaining[seg] -= 1
            if k:
                seen.add(ids[k - 1])
            nxt = self._move(states, seg)
            if nxt:
                states = self._closure(nxt)
                continue
            loc = Location(pos, seg)
            if seg not in self.alphabet and not self.has_any:
                out.append(
                    finding(
                        "HL7-STRUCT-UNEXPECTED-SEGMENT",
                        loc,
                        f"segment {seg} is not part of message structure {self.name}",
                        expected=f"a segment of {self.name}",
                        actual=seg,
                    )
                )
                continue
            found = self._resync(states, seg)
            if found is not None:
                skipped, at = found
                skipped_ids = {p.rsplit(".", 1)[-1] for p in skipped}
                if not any(remaining.get(x, 0) for x in skipped_ids):
                    for label in skipped:
                        sid = label.rsplit(".", 1)[-1]
                        group = label.rsplit(".", 1)[0] if "." in label else None
                        out.append(
                            finding(
                                "HL7-STRUCT-MISSING-SEGMENT",
                                Location(pos, sid, group=group),
                                f"required segment {label} is missing before segment {pos} ({seg})"
                                + _elsewhere(sid, ids, indexes),
                                expected=sid,
                                actual=seg,
                            )
                        )
                    states = self._closure(self._move({at}, seg))
                    continue
            if seg in seen:
                out.append(
                    finding(
                        "HL7-STRUCT-TOO-MANY",
                        loc,
                        f"segment {seg} occurs more often than structure {self.name} allows",
                        expected=f"fewer {seg}",
                        actual=seg,
                    )
                )
            else:
                out.append(
                    finding(
                        "HL7-STRUCT-SEGMENT-ORDER",
                        loc,
                        f"segment {seg} is not allowed at position {pos} in structure {self.name}",
                        expected=_expected(self, states),
                        actual=seg,
                    )
                )
        if self.final not in states:
            found = self._resync(states, None)
            end = (indexes[-1] + 1) if indexes else 1
            for label in found[0] if found else []:
                sid = label.rsplit(".", 1)[-1]
                group = label.rsplit(".", 1)[0] if "." in label else None
                out.append(
                    finding(
                        "HL7-STRUCT-MISSING-SEGMENT",
                        Location(end if n else None, sid, group=group),
                        f"required segment {label} is missing at the end of the message"
                        + _elsewhere(sid, ids, indexes),
                        expected=sid,
                        actual="end of message",
                    )
                )
        return out

    def check(self, ids: list[str], indexes: list[int]) -> list[Finding]:
        if self.matches(ids):
            return []
        return self.diagnose(ids, indexes)


def _elsewhere(sid: str, ids: list[str], indexes: list[int]) -> str:
    """A hint when the 'missing' segment is in the message, only not where the structure wants it."""
    where = [str(indexes[k]) for k, s in enumerate(ids) if s == sid]
    if not where:
        return ""
    return f" (the {sid} at segment {', '.join(where[:3])} is not in a place the structure allows)"


def _expected(st: Structure, states) -> str:
    syms = sorted({e.symbol for s in states for e in st.edges[s]})
    text = " or ".join(syms[:8])
    return text + (" …" if len(syms) > 8 else "") if syms else "end of message"


_CACHE: dict[tuple, Structure] = {}


def compiled(key: tuple, name: str, body: tuple) -> Structure:
    """The compiled structure for a key (e.g. (version, name)), built once per process."""
    st = _CACHE.get(key)
    if st is None:
        st = _CACHE[key] = Structure.compile(name, body)
    return st
