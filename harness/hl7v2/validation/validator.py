"""Validate one HL7 v2 message against the standard (and optionally an interface profile).

Sans-IO: bytes in, a Result with every finding out; never raises on any input. The message is
decoded once in its declared charset (harness.hl7v2.charset), split on its own delimiters, and
checked by precompiled per-version tables: structure (structure.py), fields (fields.py),
datatypes (datatypes.py), then MSH and ACK rules here, then the profile (profile.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.hl7v2 import charset as charsets
from harness.hl7v2 import reference
from harness.hl7v2.validation.datatypes import Ctx
from harness.hl7v2.validation.fields import check_segment, rules_for
from harness.hl7v2.validation.findings import ERROR, MESSAGE, Finding, Location, finding
from harness.hl7v2.validation.structure import Structure, compiled

_SEG_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})

# HL7 table 0354: events that share a message structure (the standard's assignment; hl7apy has no
# such table). Used when MSH-9.3 is empty and TYPE_TRIGGER is not itself a structure.
EVENT_STRUCTURES: dict[str, str] = {}
for _struct, _events in {
    "ADT_A01": "A01 A04 A08 A13",
    "ADT_A05": "A05 A14 A28 A31",
    "ADT_A06": "A06 A07",
    "ADT_A09": "A09 A10 A11",
    "ADT_A21": "A21 A22 A23 A25 A26 A27 A29 A32 A33",
    "ADT_A30": "A30 A34 A35 A36 A46 A47 A48 A49",
    "ADT_A39": "A39 A40 A41 A42",
    "ADT_A43": "A43 A44",
    "ADT_A50": "A50 A51",
    "ADT_A52": "A52 A53",
    "ADT_A54": "A54 A55",
    "ADT_A61": "A61 A62",
}.items():
    for _ev in _events.split():
        EVENT_STRUCTURES[f"ADT_{_ev}"] = _struct
for _ev in "S12 S13 S14 S15 S16 S17 S18 S19 S20 S21 S22 S23 S24 S26".split():
    EVENT_STRUCTURES[f"SIU_{_ev}"] = "SIU_S12"
for _ev in "T01 T03 T05 T07 T09 T11".split():
    EVENT_STRUCTURES[f"MDM_{_ev}"] = "MDM_T01"
for _ev in "T02 T04 T06 T08 T10".split():
    EVENT_STRUCTURES[f"MDM_{_ev}"] = "MDM_T02"
EVENT_STRUCTURES.update(
    {
        "BAR_P05": "BAR_P05",
        "DFT_P11": "DFT_P11",
        "ORU_R30": "ORU_R30",
        "QBP_Q11": "QBP_Q11",
        "RSP_K11": "RSP_K11",
        "MFN_M02": "MFN_M02",
    }
)


@dataclass(slots=True)
class Result:
    """The findings for one message, with what identifies it."""

    source: str = ""
    index: int = 0
    control_id: str | None = None
    message_type: str | None = None  # "ADT^A01"
    structure: str | None = None
    version: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not any(f.severity == ERROR for f in self.findings)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "index": self.index,
            "control_id": self.control_id,
            "message_type": self.message_type,
            "structure": self.structure,
            "version": self.version,
            "valid": self.valid,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass(slots=True)
class MessageView:
    """A split message, as the profile checks see it."""

    segments: list[tuple[int, str, list[str]]]  # (1-based index, id, fields; MSH fields[1] is MSH-2)
    comp: str
    rep: str
    sub: str
    esc: str
    message_code: str | None
    structure: str | None
    version: str | None
    declared_charset: str | None
    codec: str

    def field_value(self, fields: list[str], seg: str, number: int) -> str:
        k = number - 1 if seg == "MSH" else number
        if seg == "MSH" and number == 1:
            return "|"
        return fields[k] if 0 <= k < len(fields) else ""


class Validator:
    """Validates messages; reusable and cheap per call (all tables are compiled on first use).

    version: validate as this HL7 version instead of MSH-12 (raises UnsupportedVersion now if unknown).
    profile: an interface profile (profile.Profile) applied after the standard's checks.
    charset: an explicit charset that wins over MSH-18 (as a channel setting does).
    """

    def __init__(self, version: str | None = None, profile=None, charset: str | None = None) -> None:
        self.version = reference.normalise_version(version) if version else None
        self.profile = profile
        self.charset = charset
        if self.version is None and profile is not None and getattr(profile, "version", None):
            self.version = reference.normalise_version(profile.version)

    def validate(
        self, payload: bytes | str, source: str = "", index: int = 0, *, charset: str | None = None
    ) -> Result:
        """All findings for one message; charset (e.g. recorded with a capture) wins over MSH-18."""
        result = Result(source, index)
        try:
            self._validate(payload, result, charset or self.charset)
        except Exception as exc:  # noqa: BLE001 - any bytes in, findings out: a bug becomes a finding
            result.findings.append(
                Finding(
                    ERROR,
                    "HL7-INTERNAL",
                    MESSAGE,
                    f"the validator failed on this message: {type(exc).__name__}: {exc}",
                )
            )
        return result

    # ------------------------------------------------------------------------------------------

    def _decode(
        self, payload: bytes | str, out: list[Finding], explicit: str | None
    ) -> tuple[str, str | None, str]:
        if isinstance(payload, str):
            return payload, None, "utf-8"
        declared = charsets.declared_in(payload)
        cs = charsets.resolve(declared, explicit)
        try:
            text = charsets.decode(payload, cs.codec)
        except charsets.CharsetError as exc:
            out.append(
                finding(
                    "HL7-PARSE-CHARSET",
                    MESSAGE,
                    f"{exc} (MSH-18 {declared or 'empty'})",
                    expected=cs.codec,
                    actual=f"offset {exc.offset}",
                )
            )
            text = (
                payload.decode(cs.codec, errors="replace")
                if _codec_ok(cs.codec)
                else payload.decode("utf-8", errors="replace")
            )
        return text, declared, cs.codec

    def _validate(self, payload: bytes | str, result: Result, explicit: str | None) -> None:
        out = result.findings
        text, declared, codec = self._decode(payload, out, explicit)
        if "\n" in text:
            text = text.replace("\r\n", "\r").replace("\n", "\r")
        text = text.lstrip("\r \t\ufeff")
        if not text.strip():
            out.append(finding("HL7-PARSE-EMPTY", MESSAGE, "the message is empty"))
            return
        if not text.startswith("MSH") or len(text) < 8:
            out.append(
                finding(
                    "HL7-PARSE-NO-MSH",
                    Location(1, text[:3]),
                    "the message does not start with an MSH segment",
                    expected="MSH",
                    actual=text[:12],
                )
            )
            return
        fs = text[3]
        segs = [s for s in text.split("\r") if s.strip()]
        msh = segs[0].split(fs)
        enc = msh[1] if len(msh) > 1 else ""
        if (
            len(enc) not in (4, 5)
            or len(set(enc + fs)) != len(enc) + 1
            or any(c.isalnum() or c.isspace() for c in enc + fs)
        ):
            out.append(
                finding(
                    "HL7-PARSE-ENCODING-CHARS",
                    Location(1, "MSH", 2),
                    "MSH-1/MSH-2 must declare distinct delimiters, e.g. |^~\\&",
                    expected="^~\\&",
                    actual=fs + enc,
                )
            )
            if len(enc) < 2 or len(set(enc[:4])) != len(enc[:4]):
                return
        comp = enc[0]
        rep = enc[1] if len(enc) > 1 else "~"
        esc = enc[2] if len(enc) > 2 else ""
        sub = enc[3] if len(enc) > 3 else "&"

        def msh_field(n: int) -> str:
            return msh[n - 1] if n - 1 < len(msh) else ""

        msh9 = msh_field(9).split(rep, 1)[0].split(comp)
        mtype = msh9[0].strip() if msh9 else ""
        trigger = msh9[1].strip() if len(msh9) > 1 else ""
        struct_field = msh9[2].strip() if len(msh9) > 2 else ""
        result.message_type = f"{mtype}^{trigger}" if mtype and trigger else (mtype or None)
        result.control_id = msh_field(10) or None
        declared_version = msh_field(12).split(rep, 1)[0].split(comp, 1)[0].strip()
        result.version = declared_version or None

        version = self.version
        if version is None:
            if not declared_version:
                out.append(
                    finding(
                        "HL7-MSH-VERSION-MISSING",
                        Location(1, "MSH", 12),
                        "MSH-12 (version id) is empty; the standard to check against is unknown",
                        expected=" ".join(reference.VERSIONS),
                        actual="empty",
                    )
                )
            elif declared_version not in reference.VERSIONS:
                out.append(
                    finding(
                        "HL7-MSH-VERSION-UNSUPPORTED",
                        Location(1, "MSH", 12),
                        f"MSH-12 version {declared_version!r} is not one of the supported versions "
                        f"{', '.join(reference.VERSIONS)}",
                        expected=" ".join(reference.VERSIONS),
                        actual=declared_version,
                    )
                )
            else:
                version = declared_version
        std = reference.load(version) if version else None
        if version and version < "2.7" and len(enc) == 5 and std is not None:
            out.append(
                finding(
                    "HL7-PARSE-ENCODING-CHARS",
                    Location(1, "MSH", 2),
                    f"a fifth encoding character (truncation) exists only from HL7 2.7; "
                    f"this message is {version}",
                    expected="4 characters",
                    actual=enc,
                )
            )

        # split segments; check ids
        split: list[tuple[int, str, list[str]]] = []
        for i, s in enumerate(segs, 1):
            fields = s.split(fs)
            sid = fields[0]
            if not _SEG_ID.fullmatch(sid):
                out.append(
                    finding(
                        "HL7-PARSE-SEGMENT-ID",
                        Location(i, sid[:8]),
                        f"segment {i} starts with {sid[:8]!r}, not a three-character segment id",
                        expected="e.g. PID",
                        actual=s[:20],
                    )
                )
                continue
            split.append((i, sid, fields))

        if not mtype or (not trigger and mtype != "ACK"):
            out.append(
                finding(
                    "HL7-MSH-TYPE-MISSING",
                    Location(1, "MSH", 9),
                    "MSH-9 must give the message type and trigger event (e.g. ADT^A01)",
                    expected="TYPE^EVENT[^STRUCTURE]",
                    actual=msh_field(9) or "empty",
                )
            )

        profile = self.profile
        structure = None
        if std is not None and mtype:
            structure = self._structure(std, mtype, trigger, struct_field, out)
        result.structure = structure

        z_policy = getattr(profile, "z_segments", "allow") if profile is not None else "allow"
        body = profile.structure_for(result.message_type, structure) if profile is not None else None
        st: Structure | None = None
        if body is not None:
            st = compiled(
                ("profile", id(profile), result.message_type or "", structure or ""),
                structure or result.message_type or "profile",
                body,
            )
        elif std is not None and structure is not None:
            st = compiled((std.version, structure), structure, std.structures[structure])

        if st is not None:
            ids: list[str] = []
            idx: list[int] = []
            z_seen: set[str] = set()
            for i, sid, _ in split:
                if sid[0] == "Z" and sid not in st.alphabet:
                    if z_policy == "forbid" or (isinstance(z_policy, frozenset) and sid not in z_policy):
                        out.append(
                            finding(
                                "HL7-STRUCT-Z-FORBIDDEN",
                                Location(i, sid),
                                f"Z-segment {sid} is not allowed by profile "
                                f"{getattr(profile, 'name', '')}".rstrip(),
                                expected="no Z-segments"
                                if z_policy == "forbid"
                                else " ".join(sorted(z_policy)),
                                actual=sid,
                            )
                        )
                    elif sid not in z_seen:
                        z_seen.add(sid)
                        out.append(
                            finding(
                                "HL7-STRUCT-Z-SEGMENT",
                                Location(i, sid),
                                f"Z-segment {sid} is locally defined; its content is not checked",
                                actual=sid,
                            )
                        )
                    continue
                ids.append(sid)
                idx.append(i)
            out.extend(st.check(ids, idx))

        if std is not None:
            ctx = Ctx(comp, sub, rep, esc, out, getattr(profile, "coding_systems", None) or frozenset())
            for i, sid, fields in split:
                rules = rules_for(std, sid)
                if rules is None:
                    if sid[0] != "Z" and st is None:
                        out.append(
                            finding(
                                "HL7-SEGMENT-UNKNOWN",
                                Location(i, sid),
                                f"segment {sid} is not defined in HL7 {std.version}",
                                actual=sid,
                            )
                        )
                    continue
                ctx.seg_index = i
                ctx.seg = sid
                check_segment(std, ctx, rules, fields, sid == "MSH")

        self._ack(split, fs, comp, rep, out)

        if profile is not None:
            view = MessageView(
                split,
                comp,
                rep,
                sub,
                esc,
                result.message_type,
                structure,
                declared_version or None,
                declared,
                codec,
            )
            profile.check(view, out)

    def _structure(self, std, mtype: str, trigger: str, struct_field: str, out: list[Finding]) -> str | None:
        structures = std.structures
        if struct_field:
            if struct_field in structures:
                expected = EVENT_STRUCTURES.get(f"{mtype}_{trigger}")
                if expected and expected in structures and expected != struct_field:
                    out.append(
                        finding(
                            "HL7-MSH-STRUCTURE-MISMATCH",
                            Location(1, "MSH", 9, None, 3),
                            f"{mtype}^{trigger} uses structure {expected} in HL7 {std.version}, "
                            f"but MSH-9.3 says {struct_field}",
                            expected=expected,
                            actual=struct_field,
                        )
                    )
                return struct_field
            name = f"{mtype}_{trigger}"
            mapped = EVENT_STRUCTURES.get(name) or (name if name in structures else None)
            if mapped and mapped in structures:
                # a common sender habit (ADT^A04^ADT_A04): the structure id is outside table 0354, a table
                # problem like any other coded value, while the event still names the structure to check
                out.append(
                    finding(
                        "HL7-MSH-STRUCTURE-MISMATCH",
                        Location(1, "MSH", 9, None, 3),
                        f"MSH-9.3 {struct_field} is not a structure of HL7 {std.version}; "
                        f"{mtype}^{trigger} uses {mapped}, which is checked",
                        expected=mapped,
                        actual=struct_field,
                    )
                )
                return mapped
            out.append(
                finding(
                    "HL7-MSH-STRUCTURE-UNKNOWN",
                    Location(1, "MSH", 9, None, 3),
                    f"message structure {struct_field} does not exist in HL7 {std.version}",
                    expected=f"a structure of HL7 {std.version}",
                    actual=struct_field,
                )
            )
            return None
        if mtype == "ACK" and "ACK" in structures:
            return "ACK"
        name = f"{mtype}_{trigger}"
        if name in structures:
            return name
        mapped = EVENT_STRUCTURES.get(name)
        if mapped and mapped in structures:
            return mapped
        if trigger:
            out.append(
                finding(
                    "HL7-MSH-STRUCTURE-UNKNOWN",
                    Location(1, "MSH", 9),
                    f"HL7 {std.version} has no message structure for {mtype}^{trigger}; "
                    f"MSH-9.3 could name it",
                    expected=f"a structure of HL7 {std.version}",
                    actual=f"{mtype}^{trigger}",
                )
            )
        return None

    @staticmethod
    def _ack(split, fs: str, comp: str, rep: str, out: list[Finding]) -> None:
        msa = next(((i, f) for i, sid, f in split if sid == "MSA"), None)
        if msa is None:
            return
        i, fields = msa
        code = fields[1].split(comp, 1)[0] if len(fields) > 1 else ""
        ctl = fields[2] if len(fields) > 2 else ""
        if code not in ACK_CODES:
            out.append(
                finding(
                    "HL7-ACK-CODE",
                    Location(i, "MSA", 1),
                    f"MSA-1 acknowledgment code {code or 'empty'!s} is not one of AA AE AR CA CE CR",
                    expected="AA AE AR CA CE CR",
                    actual=code or "empty",
                )
            )
        if not ctl.strip():
            out.append(
                finding(
                    "HL7-ACK-CONTROL-ID",
                    Location(i, "MSA", 2),
                    "MSA-2 must carry the control id (MSH-10) of the message acknowledged",
                    expected="the original MSH-10",
                    actual="empty",
                )
            )
        if code in ("AE", "AR", "CE", "CR") and not any(sid == "ERR" for _, sid, _ in split):
            out.append(
                finding(
                    "HL7-ACK-NO-ERR",
                    Location(i, "MSA", 1),
                    f"an {code} acknowledgment without an ERR segment does not say what was wrong",
                    expected="an ERR segment",
                    actual="none",
                )
            )


def _codec_ok(codec: str) -> bool:
    import codecs

    try:
        codecs.lookup(codec)
    except LookupError:
        return False
    return True


def validate(
    payload: bytes | str, *, version: str | None = None, profile=None, charset: str | None = None
) -> Result:
    """One-shot convenience: validate a single message."""
    return Validator(version, profile, charset).validate(payload)
