"""Load profiles (YAML under loadtests/profiles/) resolved into a run plan (sans-IO, no locust here).

A profile says what traffic to make and how much: the shape over time, the model (open: a target
rate; closed: a number of users), the duration, the traffic kinds with their weights and messages
(MLLP templates, the 医保 flow, FHIR interactions, SOAP actions) and the SLA thresholds. Every
mistake is reported with its key path (``traffic.mllp.messages.ADT^A04.template: ...``).

The plan is what locust processes run from: plain JSON with everything resolved and embedded —
targets, template bytes, the flow's envelopes, thresholds, the run's tag — so a worker on another
machine needs neither the profile nor its files. `harness load` writes it; the locustfile reads it.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.address import parse_hostport
from harness.datafiles import data_dir
from harness.load import fhir_factory, soap_factory, thresholds
from harness.load.hl7v2_factory import Template, TemplateError
from harness.load.ids import new_run_tag
from harness.load.medins_flow import Flow, FlowError
from harness.load.shapes import Curve, Shape, ShapeError, parse_shape
from harness.load.timeline import bucket_interval

__all__ = ["KINDS", "PROFILES", "ProfileError", "load_profile", "parse_duration", "resolve", "traffic"]

PROFILES = data_dir("loadtests") / "profiles"
DEFAULT_FLOW = data_dir("loadtests") / "flows" / "outpatient-visit.yaml"
KINDS = ("mllp", "medins", "fhir", "soap")
MODELS = ("open", "closed")
TOP_KEYS = (
    "name", "description", "shape", "duration", "model", "rate", "users", "concurrency", "wait_s",
    "scale", "traffic", "thresholds", "targets",
)  # fmt: skip
DEFAULT_PATHS = {"medins": None, "fhir": "/fhir", "soap": "/services/HIPMessageServer"}
PLAN_VERSION = 1


class ProfileError(ValueError):
    """A profile or option that cannot be used; the message names the key path."""


def parse_duration(value: Any, where: str = "duration") -> float:
    """'90s', '10m', '1h30m', '2h' or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text)
        if not text or not m or not any(m.groups()):
            raise ProfileError(f"{where}: {value!r} is not a duration such as 90s, 10m, 1h30m")
        h, mins, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mins * 60 + s
    else:
        raise ProfileError(f"{where}: {value!r} is not a duration such as 90s, 10m, 1h30m")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ProfileError(f"{where}: must be more than 0 s, got {value!r}")
    return seconds


def load_profile(name: str | Path) -> tuple[dict[str, Any], Path]:
    """A profile by name (loadtests/profiles/NAME.yaml) or path; its data and its file."""
    path = Path(name)
    if not path.suffix and not path.exists():
        path = PROFILES / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES.glob("*.yaml")) if PROFILES.is_dir() else []
        hint = f"; known profiles: {', '.join(known)}" if known else ""
        raise ProfileError(f"profile {name!s}: no such profile or file{hint}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping (name, shape, traffic, thresholds, ...)")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ProfileError(f"{path}: {unknown[0]}: unknown key; known keys: {', '.join(sorted(TOP_KEYS))}")
    return data, path


def _number(
    data: Mapping, key: str, default: float | None, where: str, *, minimum: float = 0
) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ProfileError(f"{where}.{key}: expected a number >= {minimum:g}, got {value!r}")
    return float(value)


def _weights(data: Any, where: str, known: tuple[str, ...] | None = None) -> dict[str, float]:
    if not isinstance(data, Mapping) or not data:
        raise ProfileError(f"{where}: expected a mapping of names to weights")
    out = {}
    for name, weight in data.items():
        if known is not None and name not in known:
            raise ProfileError(f"{where}.{name}: unknown; known: {', '.join(known)}")
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
            raise ProfileError(f"{where}.{name}: weight must be a number >= 0, got {weight!r}")
        out[str(name)] = float(weight)
    if not any(out.values()):
        raise ProfileError(f"{where}: every weight is 0")
    return out


def _keys(data: Mapping, allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ProfileError(
            f"{where}.{unknown[0]}: unknown key; known keys here: {', '.join(sorted(allowed))}"
        )


# -- traffic kinds ----------------------------------------------------------------------------------


def _mllp(
    data: Mapping, base: Path, where: str, samples: Mapping[str, bytes] | None = None
) -> dict[str, Any]:
    _keys(data, ("weight", "messages", "timeout_s", "app_timeout_s", "conditional_wait_s"), where)
    messages = data.get("messages") or {}
    if not isinstance(messages, Mapping) or not (messages or samples):
        raise ProfileError(f"{where}.messages: expected message type -> {{weight, template, ack}}")
    out = {}
    for name, spec in messages.items():
        here = f"{where}.messages.{name}"
        if isinstance(spec, str):
            spec = {"template": spec}
        if not isinstance(spec, Mapping):
            raise ProfileError(f"{here}: expected a mapping with template (and weight, ack)")
        _keys(spec, ("weight", "template", "ack"), here)
        ref = spec.get("template")
        if not isinstance(ref, str):
            raise ProfileError(f"{here}.template: expected the path of an HL7 v2 message file")
        file = (base / ref).resolve()
        try:
            payload = file.read_bytes()
            template = Template(payload, source=str(file), ack=spec.get("ack"))
        except OSError as exc:
            raise ProfileError(f"{here}.template: {file}: {exc.strerror or exc}") from None
        except TemplateError as exc:
            raise ProfileError(f"{here}.template: {exc}") from None
        if template.name != str(name):
            raise ProfileError(f"{here}.template: {file.name} is a {template.name}, not a {name}")
        weight = _number(spec, "weight", 1.0, here)
        out[str(name)] = {
            "weight": weight,
            "source": str(file),
            "template": base64.b64encode(payload).decode("ascii"),
            "ack": spec.get("ack"),
        }
    for name, payload in (samples or {}).items():
        if name in out:
            continue
        try:
            template = Template(payload, source=f"captured {name}")
        except TemplateError as exc:
            raise ProfileError(f"{where}: the captured {name} cannot be a template: {exc}") from None
        out[template.name] = {
            "weight": 1.0,
            "source": f"a captured {name}",
            "template": base64.b64encode(payload).decode("ascii"),
            "ack": None,
        }
    timeout = _number(data, "timeout_s", 10.0, where, minimum=0.001)
    return {
        "messages": out,
        "names": list(out),
        "timeout_s": timeout,
        "app_timeout_s": _number(data, "app_timeout_s", timeout, where, minimum=0.001),
        "conditional_wait_s": _number(data, "conditional_wait_s", 2.0, where, minimum=0),
        "requests_per_arrival": 1,
    }


def _medins(data: Mapping, base: Path, where: str, samples: Any = None) -> dict[str, Any]:
    _keys(data, ("weight", "flow", "timeout_s"), where)
    ref = data.get("flow")
    if ref is not None and not isinstance(ref, str):
        raise ProfileError(f"{where}.flow: expected the path of a flow YAML")
    file = (base / ref).resolve() if ref else DEFAULT_FLOW
    try:
        flow = Flow.load(file)
    except FlowError as exc:
        raise ProfileError(f"{where}.flow: {exc}") from None
    return {
        "flow": flow.to_json(),
        "names": ([flow.sign_in.infno] if flow.sign_in else []) + flow.names,
        "timeout_s": _number(data, "timeout_s", 30.0, where, minimum=0.001),
        "requests_per_arrival": len(flow.steps),
    }


def _fhir(data: Mapping, base: Path, where: str, samples: Any = None) -> dict[str, Any]:
    _keys(data, ("weight", "interactions", "timeout_s", "path"), where)
    weights = _weights(data.get("interactions"), f"{where}.interactions", fhir_factory.INTERACTIONS)
    return {
        "interactions": weights,
        "names": list(weights),
        "path": str(data.get("path", DEFAULT_PATHS["fhir"])).rstrip("/"),
        "timeout_s": _number(data, "timeout_s", 30.0, where, minimum=0.001),
        "requests_per_arrival": 1,
    }


def _soap(data: Mapping, base: Path, where: str, samples: Any = None) -> dict[str, Any]:
    _keys(data, ("weight", "actions", "timeout_s", "path", "version"), where)
    weights = _weights(data.get("actions"), f"{where}.actions", soap_factory.ACTIONS)
    version = str(data.get("version", "1.2"))
    if version not in ("1.1", "1.2"):
        raise ProfileError(f"{where}.version: expected 1.1 or 1.2, got {version!r}")
    return {
        "actions": weights,
        "names": list(weights),
        "path": str(data.get("path", DEFAULT_PATHS["soap"])),
        "version": version,
        "timeout_s": _number(data, "timeout_s", 30.0, where, minimum=0.001),
        "requests_per_arrival": 1,
    }


_KIND_PARSERS = {"mllp": _mllp, "medins": _medins, "fhir": _fhir, "soap": _soap}


def traffic(kind: str, target: str, section: Mapping[str, Any], base: str | Path = ".") -> dict[str, Any]:
    """One kind's settings as a plan holds them, for a locustfile of your own:
    ``MLLPUser.settings = traffic("mllp", "10.1.1.5:2575", {"messages": {"ADT^A04": "adt.hl7"}})``;
    paths are relative to `base`. Raises ProfileError naming what is wrong."""
    if kind not in _KIND_PARSERS:
        raise ProfileError(f"unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    parsed = _KIND_PARSERS[kind](section, Path(base), kind)
    parsed.update(target=check_target(kind, target, kind), weight=1.0, share=1.0)
    return parsed


def check_target(kind: str, value: str, where: str = "--target") -> str:
    """HOST:PORT for mllp, an http(s) URL for the HTTP kinds; returns it normalised."""
    value = value.strip()
    if kind == "mllp":
        try:
            host, port = parse_hostport(value, what=f"{where} mllp")
        except ValueError as exc:
            raise ProfileError(str(exc)) from None
        if port == 0:
            raise ProfileError(f"{where} mllp {value!r}: port 0 is not a target")
        return value
    if not re.match(r"^https?://[^/\s]+", value):
        raise ProfileError(f"{where} {kind} {value!r}: expected a URL such as http://127.0.0.1:18080")
    return value.rstrip("/")


def parse_targets(values: list[str], kinds: list[str]) -> dict[str, str]:
    """``KIND=ADDRESS`` items; a bare HOST:PORT is the MLLP target, a bare URL the profile's one HTTP kind."""
    out: dict[str, str] = {}
    for item in values:
        kind, sep, address = item.partition("=")
        if sep and kind in KINDS:
            out[kind] = check_target(kind, address)
            continue
        if sep:
            raise ProfileError(f"--target {item!r}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
        if item.startswith(("http://", "https://")):
            http = [k for k in kinds if k != "mllp"]
            if len(http) != 1:
                raise ProfileError(
                    f"--target {item!r}: the profile has HTTP kinds {', '.join(http) or 'none'}; "
                    "say which, e.g. --target medins=" + item
                )
            out[http[0]] = check_target(http[0], item)
        else:
            out["mllp"] = check_target("mllp", item)
    return out


def resolve(
    data: Mapping[str, Any],
    source: Path,
    *,
    targets: Mapping[str, str],
    model: str | None = None,
    rate: float | None = None,
    users: int | None = None,
    duration: str | float | None = None,
    scale: float | None = None,
    concurrency: int | None = None,
    flag_thresholds: list[str] = (),
    shape: Shape | None = None,
    workers: int = 1,
    run_tag: str | None = None,
    captured: Any = None,
) -> dict[str, Any]:
    """The run plan (see the module docstring) from a profile and the command line's options."""
    where = source.name
    notes: list[str] = []
    if rate is not None and users is not None:
        raise ProfileError("--rate and --users: give one (--rate: open model; --users: closed model)")
    chosen = model or ("open" if rate is not None else "closed" if users is not None else None)
    chosen = chosen or str(data.get("model", "open"))
    if chosen not in MODELS:
        raise ProfileError(f"{where}: model: expected open or closed, got {chosen!r}")
    if chosen == "open" and users is not None:
        raise ProfileError("--users sets the closed model; the open model takes --rate")
    if chosen == "closed" and rate is not None:
        raise ProfileError("--rate sets the open model; the closed model takes --users")
    try:
        the_shape = shape or parse_shape(data.get("shape", "constant"), f"{where}: shape")
    except ShapeError as exc:
        raise ProfileError(str(exc)) from None
    seconds = parse_duration(
        duration if duration is not None else data.get("duration", "60s"),
        "--duration" if duration is not None else f"{where}: duration",
    )
    the_scale = scale if scale is not None else _number(data, "scale", 1.0, where)
    if the_scale is None or the_scale <= 0:
        raise ProfileError(f"scale must be more than 0, got {the_scale!r}")
    if chosen == "open":
        if rate is not None:
            peak = rate
        elif shape is not None:
            peak = None  # a captured day plays at its own rates unless --rate says otherwise
        else:
            peak = _number(data, "rate", None, where)
        if peak is None:
            if the_shape.unit != "per_minute":
                raise ProfileError(f"{where}: the open model needs a rate (requests per second at the peak)")
            peak = the_shape.peak / 60.0
            notes.append(f"rates as the shape gives them (peak {peak:g}/s)")
    else:
        peak = float(users) if users is not None else _number(data, "users", None, where)
        if peak is None:
            raise ProfileError(f"{where}: the closed model needs users (at the peak)")
    if peak <= 0:
        raise ProfileError(f"the peak {'rate' if chosen == 'open' else 'users'} must be more than 0")
    traffic_data = data.get("traffic")
    if not isinstance(traffic_data, Mapping) or not traffic_data:
        raise ProfileError(f"{where}: traffic: expected one or more of {', '.join(KINDS)}")
    left_out: dict[str, str] = {}
    if captured is not None:
        traffic_data = _captured_traffic(traffic_data, captured, left_out, where)
    traffic: dict[str, dict[str, Any]] = {}
    for kind, section in traffic_data.items():
        here = f"{where}: traffic.{kind}"
        if kind not in _KIND_PARSERS:
            raise ProfileError(f"{here}: unknown kind; known kinds: {', '.join(KINDS)}")
        if not isinstance(section, Mapping):
            raise ProfileError(f"{here}: expected a mapping")
        weight = _number(section, "weight", 1.0, here)
        if not weight:
            continue
        samples = captured.samples if captured is not None and kind == "mllp" else None
        parsed = _KIND_PARSERS[kind](section, source.parent, here, samples)
        profile_target = (data.get("targets") or {}).get(kind)
        target = targets.get(kind) or profile_target
        if not target:
            left_out[kind] = f"no target (--target {kind}=...)"
            continue
        parsed["target"] = check_target(kind, str(target), f"{where}: targets.{kind}")
        parsed["weight"] = weight
        traffic[kind] = parsed
    extra = sorted(set(targets) - set(traffic_data) - set(left_out))
    if extra:
        raise ProfileError(f"--target {extra[0]}: the profile {where} has no {extra[0]} traffic")
    if not traffic:
        missing = ", ".join(f"{k} ({v})" for k, v in left_out.items())
        raise ProfileError(f"nothing to send: every traffic kind of {where} lacks a target: {missing}")
    for kind, why in left_out.items():
        notes.append(f"{kind} traffic left out: {why}")
    try:
        from_profile = thresholds.parse_section(data.get("thresholds"), f"{where}: thresholds")
        from_flags = [thresholds.parse_flag(t) for t in flag_thresholds]
    except thresholds.ThresholdError as exc:
        raise ProfileError(str(exc)) from None
    if chosen == "closed":
        if any(_open_only(t) for t in from_flags):
            raise ProfileError(
                "--threshold: min_rate as a share of the target and max_backlog need the open model"
            )
        for t in filter(_open_only, from_profile):
            notes.append(
                f"threshold {t.describe()} applies to the open model: not judged in this closed-model run"
            )
        from_profile = [t for t in from_profile if not _open_only(t)]
    rules = thresholds.merge(from_profile, from_flags)
    workers = max(1, int(workers))
    total_weight = sum(t["weight"] for t in traffic.values())
    the_concurrency = concurrency or int(_number(data, "concurrency", 100, where, minimum=1))
    for t in traffic.values():
        share = t["weight"] / total_weight
        t["share"] = share
        if chosen == "open":
            t["users"] = max(workers, math.ceil(the_concurrency * share))
    wait = data.get("wait_s", 0)
    if isinstance(wait, int | float) and not isinstance(wait, bool):
        wait = [float(wait), float(wait)]
    if not (
        isinstance(wait, list)
        and len(wait) == 2
        and all(isinstance(w, int | float) for w in wait)
        and 0 <= wait[0] <= wait[1]
    ):
        raise ProfileError(f"{where}: wait_s: expected seconds or [min, max], got {data.get('wait_s')!r}")
    stop_timeout = max(max(t.get("timeout_s", 10.0), t.get("app_timeout_s", 0.0)) for t in traffic.values())
    if "medins" in traffic:
        stop_timeout = max(
            stop_timeout, traffic["medins"]["timeout_s"] * traffic["medins"]["requests_per_arrival"]
        )
    plan = {
        "version": PLAN_VERSION,
        "profile": str(data.get("name") or source.stem),
        "description": str(data.get("description") or ""),
        "source": str(source),
        "model": chosen,
        "duration_s": seconds,
        "peak": float(peak),
        "scale": float(the_scale),
        "shape": the_shape.to_json(),
        "concurrency": the_concurrency if chosen == "open" else None,
        "wait_s": wait,
        "traffic": traffic,
        "left_out": left_out,
        "thresholds": [t.to_json() for t in rules],
        "stop_timeout_s": stop_timeout + 2.0,
        "interval_s": bucket_interval(seconds),
        "run_tag": run_tag or new_run_tag(),
        "workers": workers,
        "notes": notes,
    }
    if captured is not None:
        plan["capture"] = captured.describe()
    if chosen == "open":
        plan["expected_requests"] = int(curve(plan).total + 1e-9)
    return plan


def _captured_traffic(
    traffic_data: Mapping[str, Any], captured: Any, left_out: dict[str, str], where: str
) -> dict[str, Any]:
    """The profile's traffic with the captured day's kinds, weights and message weights."""
    out: dict[str, Any] = {}
    for kind, count in captured.by_kind.items():
        section = dict(traffic_data.get(kind) or {})
        section["weight"] = count
        names = captured.by_name.get(kind, {})
        if kind == "mllp":
            messages = {}
            for name, spec in (section.get("messages") or {}).items():
                if name in names:
                    spec = {"template": spec} if isinstance(spec, str) else dict(spec)
                    messages[name] = {**spec, "weight": names[name]}
            section["messages"] = messages
        elif kind in ("fhir", "soap"):
            known = fhir_factory.INTERACTIONS if kind == "fhir" else soap_factory.ACTIONS
            key = "interactions" if kind == "fhir" else "actions"
            weights = {n: c for n, c in names.items() if n in known}
            if not weights:
                left_out[kind] = f"the capture's {kind} requests ({', '.join(names)}) are none load can make"
                continue
            section[key] = weights
        out[kind] = section
    for kind in traffic_data:
        if kind not in out and kind not in left_out:
            left_out[kind] = "not in the captured day"
    return out


def _open_only(t: thresholds.Threshold) -> bool:
    return t.relative or t.key == "max_backlog"


def curve(plan: Mapping[str, Any], kind: str | None = None) -> Curve:
    """The run's curve: requests/s (open) or users (closed); for one kind, its arrivals per second."""
    peak = plan["peak"]
    if kind is not None:
        t = plan["traffic"][kind]
        peak = peak * t["share"] / t["requests_per_arrival"]
    return Curve(Shape.from_json(plan["shape"]), plan["duration_s"], peak, plan["scale"])


def targets_text(plan: Mapping[str, Any]) -> str:
    return ", ".join(f"{kind}={t['target']}" for kind, t in plan["traffic"].items())
