"""A mitmproxy addon writing every HTTP flow into a harness capture store (`harness intercept`).

Loaded by `mitmdump -s harness/interop/addon.py --set harness_store=FILE` as a child process of
`harness intercept`, for clients that cannot be re-pointed at the proxy. Flows become exchanges the
same way `harness capture import` makes them; a `fast` CaptureWriter keeps disk off mitmproxy's loop.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from harness.interop import to_exchange
from harness.interop.mitm import from_flow


class HarnessCapture:
    def __init__(self) -> None:
        self.writer = None

    def load(self, loader) -> None:
        loader.add_option("harness_store", str, "", "Capture store file the flows are written to.")
        loader.add_option("harness_channel", str, "intercept", "Channel name of the captured exchanges.")
        loader.add_option("harness_kind", str, "raw", "fhir, soap, medins, cdc or raw.")

    def configure(self, updated) -> None:
        from mitmproxy import ctx

        if "harness_store" in updated and ctx.options.harness_store and self.writer is None:
            from harness.store import CaptureWriter

            self.writer = CaptureWriter(ctx.options.harness_store, "fast")

    def _capture(self, flow: http.HTTPFlow) -> None:
        from mitmproxy import ctx

        if self.writer is None:
            return
        try:
            ex = to_exchange(
                from_flow(flow), channel=ctx.options.harness_channel, kind=ctx.options.harness_kind
            )
            if flow.response is None and flow.error is not None:
                ex.outcome = "upstream_down"
                ex.error = flow.error.msg
            self.writer.submit(ex)
        except Exception as exc:  # noqa: BLE001 - a capture problem must not break the client's traffic
            logging.warning("harness capture failed for %s: %s", flow.request.pretty_url, exc)

    def response(self, flow: http.HTTPFlow) -> None:
        self._capture(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._capture(flow)

    def done(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


addons = [HarnessCapture()]
