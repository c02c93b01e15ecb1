"""`harness load PROFILE --target ...`: peak-hour load with locust, SLA thresholds, a report."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli import _tls_options as sending
from harness.cli._common import EXIT_CHECKS_FAILED, EXIT_OK, EXIT_USAGE, fail_usage

JSON_KEYS = (
    "profile", "target", "model", "duration_s", "requests", "failures", "rate", "p50_ms", "p95_ms", "p99_ms",
)  # fmt: skip


def _through(
    value: str, kinds: list[str], targets: dict[str, str], tls_kinds: set[str] | None = None
) -> tuple[Path, list[str] | None]:
    """A proxy config (targets from its channels, merge on those channels) or a capture store file.
    `tls_kinds` gets the kinds whose chosen channel listens with TLS (MLLP: the target cannot say so)."""
    path = Path(value)
    if path.suffix.lower() not in (".yaml", ".yml"):
        if not path.is_file():
            raise ValueError(f"--through {value}: no such proxy config or capture store")
        return path, None
    from harness.proxy.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        raise ValueError(f"--through {value}: {exc}") from None
    channels = []
    for kind in kinds:
        matching = [
            c for c in config.channels.values()
            if (c.protocol == "mllp") == (kind == "mllp")
            and (kind == "mllp" or getattr(c, "kind", "") == kind)
        ]  # fmt: skip
        if kind in targets:
            chosen = [c for c in matching if _same_listen(c, targets[kind], kind)]
        elif len(matching) == 1:
            chosen = matching
            targets[kind] = _address(matching[0], kind)
        else:
            if matching:
                names = ", ".join(c.name for c in matching)
                raise ValueError(
                    f"--through {value}: channels {names} all carry {kind}; say which with --target"
                )
            chosen = []
        channels += [c.name for c in chosen]
        if tls_kinds is not None and any(c.tls is not None for c in chosen):
            tls_kinds.add(kind)
    return Path(config.store), channels or None


def _address(channel: Any, kind: str) -> str:
    host = channel.listen.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if channel.tls is not None else "http"
    return f"{shown}:{channel.listen.port}" if kind == "mllp" else f"{scheme}://{shown}:{channel.listen.port}"


def _same_listen(channel: Any, target: str, kind: str) -> bool:
    return _address(channel, kind).split("://")[-1] == target.split("://")[-1].rstrip("/").split("/")[0]


def _with_tls(plan: dict[str, Any], tls: Any, listening: set[str]) -> None:
    """The client TLS options go to the MLLP target and the https:// ones (the plan carries them to every
    worker: a remote worker needs the same files at the same paths). `listening`: kinds whose proxy
    channel listens with TLS (`--through`), which speak it even without options."""
    from dataclasses import asdict

    if tls is None:
        from harness.client_tls import TLSOptions

        if "mllp" in listening and "mllp" in plan["traffic"]:  # HTTP targets say https:// themselves
            plan["traffic"]["mllp"]["tls"] = asdict(TLSOptions())
        return

    chosen = [
        settings for kind, settings in plan["traffic"].items()
        if kind == "mllp" or str(settings.get("target", "")).startswith("https://")
    ]  # fmt: skip
    if not chosen:
        raise fail_usage("TLS options given, but no target speaks TLS (an MLLP target, or an https:// one)")
    for settings in chosen:
        settings["tls"] = asdict(tls)


def _echo(text: str, *, err: bool) -> None:
    typer.echo(text, err=err)


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    verdict = "PASS" if summary["passed"] else "FAIL"
    lines = [
        f"{verdict}: {summary['requests']} requests, {summary['failures']} failed, {summary['rate']:.1f}/s, "
        f"p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, p99 {summary['p99_ms']} ms"
    ]
    if summary.get("open"):
        o = summary["open"]
        lines.append(
            f"open model: target {o['target_rate']:.1f}/s, started {o['achieved_rate']:.1f}/s, "
            f"backlog max {o['backlog_max']}, start delay p95 {o['wait_p95_ms']} ms"
        )
    for t in summary["thresholds"]:
        mark = "ok    " if t["passed"] else "MISSED" if t["passed"] is False else "n/a   "
        actual = "" if t["actual"] is None else f" (actual {t['actual']:.4g})"
        note = f" [{t['note']}]" if t["note"] else ""
        lines.append(f"  {mark} {t['text']}{actual}{note}")
    proxy = summary.get("proxy")
    if proxy:
        state = "match" if proxy["counts_match"] else "DIFFER"
        lines.append(
            f"proxy capture: {proxy['captured']} exchanges for {proxy['requests']} requests ({state})"
        )
    for error in summary["errors"][:5]:
        lines.append(f"  failure x{error['count']} {error['name']}: {error['reason']}")
    if summary.get("interrupted"):
        lines.append(f"interrupted after {summary['ran_s']:.0f} s: the report covers the part that ran")
    return lines


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("load")
    def load(
        profile: Annotated[
            str, typer.Argument(help="A profile name (loadtests/profiles/NAME.yaml) or a YAML file.")
        ],
        target: Annotated[
            list[str] | None,
            typer.Option(
                "--target",
                "-t",
                help="KIND=ADDRESS (mllp=HOST:PORT, medins|fhir|soap=http://HOST:PORT); "
                "a bare HOST:PORT is MLLP. Repeatable.",
            ),
        ] = None,
        users: Annotated[int | None, typer.Option(min=1, help="Closed model: users at the peak.")] = None,
        rate: Annotated[
            float | None, typer.Option(min=0.001, help="Open model: requests per second at the peak.")
        ] = None,
        duration: Annotated[
            str | None, typer.Option(help="Run time, e.g. 90s, 10m, 1h30m (the shape is played in it).")
        ] = None,
        scale: Annotated[
            float | None, typer.Option(min=0.001, help="Multiply the load (2: twice the peak).")
        ] = None,
        concurrency: Annotated[
            int | None, typer.Option(min=1, help="Open model: most requests in flight at once.")
        ] = None,
        threshold: Annotated[
            list[str] | None,
            typer.Option(
                help="[NAME:]KEY=VALUE, e.g. p95_ms=500, error_rate=1%, min_rate=95%, 'ADT^A04:p99_ms=800'."
            ),
        ] = None,
        workers: Annotated[
            int, typer.Option(min=0, help="Local locust worker processes (locust's master/worker).")
        ] = 0,
        remote_workers: Annotated[
            int, typer.Option(min=0, help="Also wait for this many workers from other machines (see README).")
        ] = 0,
        master_bind: Annotated[
            str, typer.Option(metavar="HOST[:PORT]", help="Where the master listens for workers.")
        ] = "127.0.0.1",
        web: Annotated[
            bool, typer.Option("--web", help="Run with locust's web UI (Ctrl-C ends it).")
        ] = False,
        web_port: Annotated[
            int, typer.Option(min=1, max=65535, help="Port of the web UI (loopback).")
        ] = 8089,
        from_store: Annotated[
            Path | None, typer.Option(help="Shape from a captured day in this capture store (with --day).")
        ] = None,
        day: Annotated[
            str | None, typer.Option(metavar="YYYY-MM-DD", help="The captured day (local time).")
        ] = None,
        channel: Annotated[
            list[str] | None, typer.Option(help="With --from-store: only these channels. Repeatable.")
        ] = None,
        through: Annotated[
            str | None,
            typer.Option(
                metavar="PROXY_CONFIG|STORE",
                help="The load goes through this proxy: merge its capture "
                "into the report (targets default to its channels).",
            ),
        ] = None,
        out: Annotated[
            Path | None, typer.Option(help="Folder for the report (default reports/load-PROFILE-TIME).")
        ] = None,
        write_plan: Annotated[
            Path | None, typer.Option(help="Only write the run plan (JSON) here and exit.")
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the summary as one JSON object.")
        ] = False,
        tls: sending.ClientTLSOpt = False,
        ca: sending.ClientCAOpt = None,
        cert: sending.ClientCertOpt = None,
        key: sending.ClientKeyOpt = None,
        server_name: sending.ServerNameOpt = None,
        insecure: sending.InsecureOpt = False,
    ) -> None:
        """Load-test an interface with locust: a profile's shape and mix, SLA thresholds, an offline report.

        Runs locust as child processes (headless, one line of progress), then writes report.html, CSV and
        JSON. Exit code 0 when every threshold held, 1 when one was missed (named), 2 on a usage or
        environment error or an interrupted run.
        """
        from harness.load.profile import ProfileError, load_profile, parse_targets, resolve

        err = as_json
        try:
            data, source = load_profile(profile)
            kinds = list((data.get("traffic") or {}).keys())
            targets = parse_targets(target or [], kinds)
            store, channels = (None, None)
            tls_kinds: set[str] = set()
            if through:
                store, channels = _through(through, kinds, targets, tls_kinds)
            captured = None
            if from_store is not None or day is not None:
                if from_store is None or day is None:
                    raise ProfileError("--from-store and --day go together")
                from harness.cli._audit import preflight
                from harness.load.capture_shape import CaptureShapeError, derive

                try:
                    captured = derive(from_store, day, channel or None)
                except CaptureShapeError as exc:
                    raise ProfileError(str(exc)) from None
                preflight(from_store)
                for kind in captured.by_kind:
                    if kind not in kinds:
                        kinds.append(kind)
            elif channel:
                raise ProfileError("--channel selects channels of --from-store")
            host, _, port = (
                master_bind.rpartition(":") if master_bind.count(":") == 1 else (master_bind, "", "")
            )
            plan = resolve(
                data, source, targets=targets, rate=rate, users=users, duration=duration, scale=scale,
                concurrency=concurrency, flag_thresholds=threshold or [], workers=workers + remote_workers,
                captured=captured,
                shape=captured.shape if captured is not None else None,
            )  # fmt: skip
        except (ProfileError, ValueError) as exc:
            raise fail_usage(str(exc)) from None
        _with_tls(plan, sending.client_tls(tls, ca, cert, key, server_name, insecure), tls_kinds)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = out or Path("reports") / f"load-{plan['profile']}-{stamp}"
        folder.mkdir(parents=True, exist_ok=True)
        plan["results"] = str((folder / "results.json").resolve())
        plan["progress"] = str((folder / "progress.jsonl").resolve())
        for name in ("results.json", "progress.jsonl"):
            (folder / name).unlink(missing_ok=True)
        if write_plan is not None:
            write_plan.write_text(json.dumps(plan, ensure_ascii=False, indent=1), encoding="utf-8")
            _echo(f"plan written to {write_plan}", err=err)
            raise typer.Exit(EXIT_OK)
        import importlib.util

        if importlib.util.find_spec("locust") is None:
            raise fail_usage("locust is not installed: pip install 'harness[load]'")
        plan_path = folder / "plan.json"
        plan_path.write_text(json.dumps(plan, ensure_ascii=False, indent=1), encoding="utf-8")
        _header(plan, folder, err)
        from harness.load.run import Launch, RunError, run

        launch = Launch(
            plan_path=plan_path.resolve(), folder=folder.resolve(),
            workers=workers, remote_workers=remote_workers,
            master_bind=host or "127.0.0.1", master_port=int(port) if port.isdigit() else 0, web=web,
            web_port=web_port, stop_timeout_s=plan["stop_timeout_s"],
        )  # fmt: skip
        if remote_workers:
            master, _ = launch.command_lines()
            _echo(
                f"waiting for {remote_workers} worker(s) from other machines: on each run\n"
                "  locust -f loadtests/locustfile.py --worker --master-host THIS_HOST "
                f"--master-port {launch.master_port}",
                err=err,
            )
        if web:
            _echo(f"locust web UI: http://127.0.0.1:{web_port}/ (running now; Ctrl-C ends it)", err=err)
        try:
            summary = run(launch, Path(plan["results"]), Path(plan["progress"]), _progress_printer(err))
        except RunError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(EXIT_USAGE) from None
        if store is not None:
            from harness.load.merge import MergeError, merge

            try:
                summary["proxy"] = merge(summary, store, channels)
            except MergeError as exc:
                summary.setdefault("notes", []).append(f"proxy capture not merged: {exc}")
        from harness.load.report import write_reports

        write_reports(summary, folder)
        from harness.cli._audit import audited

        for read, why in ((from_store, "shape"), (store, "merge")):
            if read is not None:
                audited(
                    read, "load", str(profile),
                    {"read_for": why, "day": day if why == "shape" else None,
                     "report": str(folder.resolve())},
                )  # fmt: skip
        code = (
            EXIT_USAGE
            if summary.get("interrupted")
            else EXIT_CHECKS_FAILED
            if summary["breached"]
            else EXIT_OK
        )
        summary["exit_code"] = code
        (folder / "summary.json").write_text(
            json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        if as_json:
            out_doc = {k: summary.get(k) for k in JSON_KEYS}
            out_doc.update(
                passed=summary["passed"], breached=summary["breached"], thresholds=summary["thresholds"],
                by_name=summary["by_name"], errors=summary["errors"], open=summary.get("open"),
                proxy=_proxy_brief(summary.get("proxy")), interrupted=summary["interrupted"],
                reports=summary["reports"], exit_code=code,
            )  # fmt: skip
            typer.echo(json.dumps(out_doc, ensure_ascii=False))
        else:
            for line in _summary_lines(summary):
                typer.echo(line)
            typer.echo(f"report: {summary['reports']['report.html']}")
        raise typer.Exit(code)


def _proxy_brief(proxy: dict[str, Any] | None) -> dict[str, Any] | None:
    if not proxy:
        return None
    return {
        k: proxy[k]
        for k in ("store", "channels", "captured", "requests", "counts_match", "outcomes", "upstreams")
    }


def _header(plan: dict[str, Any], folder: Path, err: bool) -> None:
    from harness.load.profile import targets_text

    if plan["model"] == "open":
        expected = plan.get("expected_requests", 0)
        load = f"open model, {plan['peak']:g} requests/s at the peak, ~{expected} requests"
    else:
        load = f"closed model, {plan['peak']:g} users at the peak"
    scale = f" x{plan['scale']:g}" if plan["scale"] != 1 else ""
    _echo(
        f"load {plan['profile']}: {load}{scale}, shape {plan['shape']['name']}, {plan['duration_s']:g} s, "
        f"targets {targets_text(plan)}",
        err=err,
    )
    for note in plan["notes"]:
        _echo(f"  note: {note}", err=err)
    _echo(f"  report folder: {folder}", err=err)


def _progress_printer(err: bool):
    tty = sys.stderr.isatty()
    state = {"last": 0.0}

    def show(text: str, final: bool) -> None:
        import time

        if tty:
            sys.stderr.write("\r\x1b[2K" + text + ("\n" if final else ""))
            sys.stderr.flush()
            return
        now = time.monotonic()
        if final or now - state["last"] >= 10.0:
            state["last"] = now
            print(text, file=sys.stderr, flush=True)

    return show
