"""`harness proxy --config FILE`: run the capturing, fault-injecting proxy for every channel in a config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli._common import fail_usage
from harness.cli._options import OptionalStoreOpt


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("proxy")
    def proxy(
        config: Annotated[
            Path, typer.Option("--config", "-c", help="YAML config (every key: proxies/example.yaml).")
        ],
        store: OptionalStoreOpt = None,
        json_log: Annotated[bool, typer.Option("--json-log", help="Log as JSON lines.")] = False,
        check: Annotated[bool, typer.Option("--check", help="Validate the config and exit.")] = False,
    ) -> None:
        """Run the proxy (MLLP and HTTP channels): forward losslessly, capture every exchange, inject faults.

        Prints one line per channel (`channel adt listening on 127.0.0.1:2575 -> 127.0.0.1:12575`),
        runs until SIGTERM or Ctrl-C, then flushes the capture store. --store (or $HARNESS_STORE) takes
        the place of the config's `store:`. Exit 2 for a bad config, unusable TLS material (named with its
        setting) or a port in use.
        """
        from harness.proxy.config import ConfigError, load_config

        try:
            cfg = load_config(config)
        except ConfigError as exc:
            raise fail_usage(f"{config}: {exc}") from None
        if check:
            from harness.proxy.endpoints import check_tls
            from harness.tls import TLSError

            try:
                check_tls(cfg)  # certificates and keys load and match, as at start
            except TLSError as exc:
                raise fail_usage(f"{config}: {exc}") from None
            typer.echo(f"{config}: ok ({len(cfg.channels)} channel(s))")
            return
        from harness.proxy.server import run

        code = run(cfg, store=store, json_log=json_log)
        if code:
            raise typer.Exit(code)
