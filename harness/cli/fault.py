"""`harness fault add|list|remove|clear`: fault rules on a running proxy, through its admin API.

The command only moves JSON between the terminal and the admin API; rules are validated locally with
the same code the proxy uses (so a typo fails before any request) and again by the proxy.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli._common import fail_usage
from harness.terminal_text import visible

DEFAULT_ADMIN = "http://127.0.0.1:8700"
TOKEN_ENV = "HARNESS_ADMIN_TOKEN"
CA_ENV = "HARNESS_ADMIN_CA"
CERT_ENV = "HARNESS_ADMIN_CERT"
KEY_ENV = "HARNESS_ADMIN_KEY"

AdminOpt = Annotated[
    str,
    typer.Option(
        "--admin",
        envvar="HARNESS_ADMIN_URL",
        help="The proxy's admin API base URL ($HARNESS_ADMIN_URL); https:// for an admin API with "
        "admin.tls (a private CA's certificate in $HARNESS_ADMIN_CA; for admin.tls.ca, the client "
        "certificate and key in $HARNESS_ADMIN_CERT and $HARNESS_ADMIN_KEY).",
    ),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option("--token-file", help=f"File whose first line is the admin token (default: ${TOKEN_ENV})."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of text.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the admin API.")]


SHORTHAND = (
    "type", "code", "text", "ms", "jitter_ms", "after_ms", "mode", "target", "when", "count", "bytes_per_s",
    "framing", "offset", "keep_bytes", "charset", "action_seed", "direction", "reply", "message_type", "path",
    "every_nth", "first_n", "probability", "seed", "limit", "id", "description",
)  # fmt: skip
"""The `harness fault add` options that build a rule without --rule."""


class AdminError(Exception):
    """The admin API could not be used; the message says why and what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _token(token_file: Path | None) -> str:
    """The token from --token-file or $HARNESS_ADMIN_TOKEN, refused on the terms the proxy refuses it
    (under 16 characters; a token file readable by group or others)."""
    from harness.proxy.admin_token import AdminTokenError, check_token, read_token_file

    try:
        if token_file is not None:
            return read_token_file(token_file, "--token-file")
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise AdminError(f"no admin token: set {TOKEN_ENV} or pass --token-file")
        return check_token(token, TOKEN_ENV)
    except AdminTokenError as exc:
        raise AdminError(str(exc)) from None


def _tls_context(admin: str) -> Any:
    """For an https:// admin API: trust $HARNESS_ADMIN_CA when set (a private CA), else the system's;
    present $HARNESS_ADMIN_CERT (key in it or in $HARNESS_ADMIN_KEY) to an admin API asking for one."""
    if not admin.lower().startswith("https://"):
        return None
    import ssl

    ca = os.environ.get(CA_ENV, "").strip()
    try:
        context = ssl.create_default_context(cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise AdminError(f"${CA_ENV} {ca}: cannot load CA certificates: {exc}") from None
    cert = os.environ.get(CERT_ENV, "").strip()
    key = os.environ.get(KEY_ENV, "").strip()
    if key and not cert:
        raise AdminError(f"${KEY_ENV} is set but ${CERT_ENV} is not")
    if cert:
        try:
            context.load_cert_chain(cert, key or None)
        except (OSError, ssl.SSLError) as exc:
            raise AdminError(f"${CERT_ENV} {cert} / ${KEY_ENV} {key or cert}: cannot load: {exc}") from None
    return context


def _warn_if_clear(admin: str) -> None:
    from urllib.parse import urlsplit

    from harness.proxy.config import is_loopback

    parts = urlsplit(admin)
    if parts.scheme.lower() == "http" and parts.hostname and not is_loopback(parts.hostname):
        typer.secho(
            f"warning: sending the admin token in clear to {parts.hostname}; use https:// (admin.tls)",
            err=True,
            fg=typer.colors.YELLOW,
        )


def _call(admin: str, token: str, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One admin API request; returns the decoded JSON or raises AdminError with the API's message."""
    url = admin.rstrip("/") + path
    context = _tls_context(admin)
    _warn_if_clear(admin)
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            message = json.loads(raw)["error"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode("utf-8", "replace").strip() or exc.reason
        if exc.code == 401:
            raise AdminError(f"the admin API at {admin} refused the token (401): {message}") from None
        raise AdminError(f"{method} {path}: {exc.code}: {message}", exc.code) from None
    except urllib.error.URLError as exc:
        raise AdminError(f"cannot reach the admin API at {admin}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise AdminError(f"cannot use the admin API at {admin}: {exc}") from None


def _channel_path(channel: str, *rest: str) -> str:
    from urllib.parse import quote

    return "/".join(["/channels", quote(channel, safe=""), *(quote(p, safe="") for p in rest)])


def _load_rule(text: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AdminError(f"cannot read rule file {path}: {exc}") from None
        source = str(path)
    else:
        source = "--rule"
    from harness.proxy.faults.params import RuleError, load_rule_json

    try:
        return load_rule_json(text)
    except RuleError as exc:
        joined = " is " if exc.problem.startswith("not ") else ": "
        raise AdminError(f"{source}{joined}{exc.problem}") from None


def rule_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """Build a rule from the shorthand options (None values are left out)."""
    match_keys = {
        "direction": "direction",
        "reply": "reply",
        "message_type": "message_type",
        "every_nth": "every_nth",
        "first_n": "first_n",
        "probability": "probability",
        "seed": "seed",
    }
    action_keys = (
        "code", "text", "ms", "jitter_ms", "after_ms", "mode", "target", "when", "count", "bytes_per_s",
        "framing", "offset", "keep_bytes", "charset",
    )  # fmt: skip
    match = {key: options[opt] for opt, key in match_keys.items() if options.get(opt) is not None}
    paths = {}
    for item in options.get("path") or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise AdminError(f"--path {item!r}: expected PATH=VALUE, e.g. PID-3.1=re:^9")
        paths[name] = value
    if paths:
        match["paths"] = paths
    action = {"type": options["type"]}
    for key in action_keys:
        value = options.get(key)
        if value is not None:
            action[key] = int(value) if isinstance(value, float) and value.is_integer() else value
    if options.get("action_seed") is not None:
        action["seed"] = options["action_seed"]
    rule: dict[str, Any] = {"action": action}
    if match:
        rule["match"] = match
    for key in ("limit", "id", "description"):
        if options.get(key) is not None:
            rule[key] = options[key]
    return rule


def _describe(rule: dict[str, Any]) -> str:
    action = dict(rule.get("action", {}))
    kind = action.pop("type", "?")
    params = " ".join(f"{k}={v}" for k, v in action.items() if v is not None)
    match = " ".join(f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v}"
                     for k, v in rule.get("match", {}).items())  # fmt: skip
    limit = rule.get("limit")
    hits = f"hits {rule.get('hits', 0)}" + (f"/{limit}" if limit else "")
    state = " (exhausted)" if rule.get("exhausted") else ""
    error = f" errors {rule['errors']}: {rule.get('last_error')}" if rule.get("errors") else ""
    return f"{rule.get('id', '?'):<8} {kind} {params}".rstrip() + f"  [{match}]  {hits}{state}{error}"


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    fault_app = typer.Typer(
        help="Fault rules on a running proxy (through its admin API): add, list, remove, clear.",
        no_args_is_help=True,
    )
    app.add_typer(fault_app, name="fault")
    groups["fault"] = fault_app

    def run(action: Any) -> Any:
        try:
            return action()
        except AdminError as exc:
            raise fail_usage(str(exc)) from None

    @fault_app.command("add")
    def add(
        channel: Annotated[str, typer.Argument(help="Channel name (as in the proxy config).")],
        rule: Annotated[
            str | None,
            typer.Option("--rule", help="The rule as JSON, or @FILE.json (a rule or a list of rules)."),
        ] = None,
        type_: Annotated[
            str | None,
            typer.Option(
                "--type",
                help="Shorthand: action type (delay drop nak late_ack corrupt close reset duplicate throttle "
                "hold_reply).",
            ),
        ] = None,
        code: Annotated[
            str | None, typer.Option(help="nak: AE (default), AR, CE, CR; AA only on purpose.")
        ] = None,
        text: Annotated[str | None, typer.Option(help="nak: the error text.")] = None,
        ms: Annotated[float | None, typer.Option(help="delay, hold_reply: milliseconds.")] = None,
        jitter_ms: Annotated[float | None, typer.Option(help="delay: ± milliseconds.")] = None,
        after_ms: Annotated[
            float | None, typer.Option(help="late_ack: milliseconds (default ack timeout + 1 s).")
        ] = None,
        mode: Annotated[
            str | None, typer.Option(help="corrupt: flip_byte, break_framing, wrong_charset, truncate.")
        ] = None,
        target: Annotated[
            str | None, typer.Option(help="corrupt, throttle: request, response (throttle: both).")
        ] = None,
        when: Annotated[
            str | None, typer.Option(help="close: before_forward, after_forward, mid_frame.")
        ] = None,
        count: Annotated[int | None, typer.Option(help="duplicate: times to forward (default 2).")] = None,
        bytes_per_s: Annotated[int | None, typer.Option(help="throttle: rate in bytes per second.")] = None,
        framing: Annotated[
            str | None, typer.Option(help="corrupt break_framing: no_start, no_end, no_cr.")
        ] = None,
        offset: Annotated[int | None, typer.Option(help="corrupt flip_byte: byte offset.")] = None,
        keep_bytes: Annotated[int | None, typer.Option(help="corrupt truncate: bytes to keep.")] = None,
        charset: Annotated[
            str | None, typer.Option(help="corrupt wrong_charset: codec to re-encode into.")
        ] = None,
        action_seed: Annotated[int | None, typer.Option(help="corrupt: seed of its own choices.")] = None,
        direction: Annotated[str | None, typer.Option(help="Match: request (default) or response.")] = None,
        reply: Annotated[
            str | None,
            typer.Option(help="Match (response rules): accept (CA CE CR) or application (AA AE AR) reply."),
        ] = None,
        message_type: Annotated[
            str | None, typer.Option(help="Match: ADT^A01, ADT, ADT^A0*, re:REGEX.")
        ] = None,
        path: Annotated[
            list[str] | None,
            typer.Option("--path", help="Match: PATH=VALUE, e.g. PID-3.1=re:^9 (repeatable)."),
        ] = None,
        every_nth: Annotated[int | None, typer.Option(help="Match: every Nth matching message.")] = None,
        first_n: Annotated[
            int | None, typer.Option(help="Match: only the first N matching messages.")
        ] = None,
        probability: Annotated[
            float | None, typer.Option(help="Match: fire with this probability (0-1).")
        ] = None,
        seed: Annotated[
            int | None, typer.Option(help="Match: seed for probability (repeatable runs).")
        ] = None,
        limit: Annotated[int | None, typer.Option(help="Stop after this many hits.")] = None,
        rule_id: Annotated[
            str | None, typer.Option("--id", help="Rule id (default: assigned, r1, r2, ...).")
        ] = None,
        description: Annotated[str | None, typer.Option(help="Free text shown in listings.")] = None,
        admin: AdminOpt = DEFAULT_ADMIN,
        token_file: TokenFileOpt = None,
        timeout: TimeoutOpt = 10.0,
        as_json: JsonOpt = False,
    ) -> None:
        """Add a fault rule to CHANNEL: `--rule JSON`, `--rule @file.json`, or shorthand options.

        Example: harness fault add adt --type nak --code AE --text "ward closed"
        --message-type ADT^A01 --every-nth 3
        """
        options = dict(locals())
        options["type"] = type_
        options["id"] = rule_id

        def go() -> None:
            from harness.proxy.faults.params import RuleError
            from harness.proxy.faults.rules import parse_rule

            shorthand = {k: v for k, v in options.items() if k in SHORTHAND and v is not None}
            if rule is not None and shorthand:
                raise AdminError(
                    f"use either --rule or shorthand options, not both (got --{next(iter(shorthand))})"
                )
            if rule is not None:
                data = _load_rule(rule)
            elif type_ is not None:
                data = rule_from_options(options)
            else:
                raise AdminError(
                    "give the rule: --rule JSON, --rule @file.json, or --type ACTION with options"
                )
            token = _token(token_file)
            # rules are checked against the channel's protocol (HTTP channels have their own actions)
            info = _call(admin, token, "GET", _channel_path(channel), None, timeout)
            protocol = info.get("protocol", "mllp")
            items = data if isinstance(data, list) else [data]
            if protocol == "http" and rule is None and str(data["action"].get("code", "")).isdigit():
                data["action"]["code"] = int(data["action"]["code"])  # --code 503: an HTTP status
            for i, item in enumerate(items):
                try:
                    parse_rule(item, protocol)
                except RuleError as exc:
                    where = exc.within(f"[{i}]") if isinstance(data, list) else exc
                    raise AdminError(f"bad fault rule: {where}") from None
            reply = _call(admin, token, "POST", _channel_path(channel, "faults"), data, timeout)
            added = reply.get("rules") or [reply.get("rule")]
            for item in added:
                if as_json:
                    typer.echo(json.dumps({"channel": channel, **item}, ensure_ascii=False))
                else:
                    typer.echo(visible(f"{channel}: added {_describe(item)}"))

        run(go)

    @fault_app.command("list")
    def list_(
        channel: Annotated[
            str | None, typer.Argument(help="Channel name; all channels when left out.")
        ] = None,
        admin: AdminOpt = DEFAULT_ADMIN,
        token_file: TokenFileOpt = None,
        timeout: TimeoutOpt = 10.0,
        as_json: JsonOpt = False,
    ) -> None:
        """List the fault rules of one channel or of every channel, with their hit counts."""

        def go() -> None:
            token = _token(token_file)
            if channel is None:
                names = [
                    c["name"] for c in _call(admin, token, "GET", "/channels", timeout=timeout)["channels"]
                ]
            else:
                names = [channel]
            for name in names:
                try:
                    rules = _call(admin, token, "GET", _channel_path(name, "faults"), timeout=timeout)[
                        "rules"
                    ]
                except AdminError as exc:
                    if channel is None and exc.status == 409:
                        continue  # a channel without a fault engine
                    raise
                for item in rules:
                    if as_json:
                        typer.echo(json.dumps({"channel": name, **item}, ensure_ascii=False))
                    else:
                        typer.echo(visible(f"{name}: {_describe(item)}"))
                if not rules and not as_json:
                    typer.echo(f"{name}: no fault rules")

        run(go)

    @fault_app.command("remove")
    def remove(
        channel: Annotated[str, typer.Argument(help="Channel name.")],
        rule_id: Annotated[str, typer.Argument(help="Rule id, as `harness fault list` shows it.")],
        admin: AdminOpt = DEFAULT_ADMIN,
        token_file: TokenFileOpt = None,
        timeout: TimeoutOpt = 10.0,
        as_json: JsonOpt = False,
    ) -> None:
        """Remove one fault rule."""

        def go() -> None:
            reply = _call(
                admin,
                _token(token_file),
                "DELETE",
                _channel_path(channel, "faults", rule_id),
                timeout=timeout,
            )
            if as_json:
                typer.echo(json.dumps(reply, ensure_ascii=False))
            else:
                typer.echo(visible(f"{channel}: removed {_describe(reply['removed'])}"))

        run(go)

    @fault_app.command("clear")
    def clear(
        channel: Annotated[str, typer.Argument(help="Channel name.")],
        admin: AdminOpt = DEFAULT_ADMIN,
        token_file: TokenFileOpt = None,
        timeout: TimeoutOpt = 10.0,
        as_json: JsonOpt = False,
    ) -> None:
        """Remove every fault rule of a channel."""

        def go() -> None:
            reply = _call(
                admin, _token(token_file), "POST", _channel_path(channel, "faults", "reset"), timeout=timeout
            )
            if as_json:
                typer.echo(json.dumps(reply, ensure_ascii=False))
            else:
                typer.echo(f"{channel}: removed {reply['removed']} fault rule(s)")

        run(go)
