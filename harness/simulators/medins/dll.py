"""A stand-in for CHSInterfaceYn.dll's calling convention, for testing a Yunnan HIS's 医保 code paths.

A Yunnan HIS never speaks HTTP to the insurance platform itself: it calls the provincial DLL,

    Init(fixmedins_code, infosyscode, infosyssign, url, errmsg)      once
    BusinessHandle(fixmedins_code, infosyscode, infosyssign, input, output, errmsg)   ANSI (GBK) JSON
    BusinessHandleW(...)                                            UTF-16 JSON (DLL 1.0.2.8 and later)

and the DLL posts the JSON envelope to the `url` configured in CHSInterfaceYn.ini, whose path is
`/eapdomain/callService`. That HTTP exchange is what `harness proxy` sees and captures, so testing such
a HIS means pointing the DLL's url at the proxy, with `harness mock medins` (or the real centre)
upstream. Where the DLL itself cannot run (Linux CI, no certificate), this class makes the same calls
over the same wire: scripts and tests written against `ChsInterfaceYn` exercise the HIS-side JSON, the
GBK/GB18030 round trip and the proxy exactly as the DLL would.

How the DLL carries infosyscode/infosyssign on the wire is not in a public source (M); this adapter
adds them to the envelope, which the simulator accepts (as it accepts headers of those names).
Older DLLs (before 1.0.4.2) answered in GBK and turned characters outside GBK into '?';
`charset="gbk"` reproduces that, the default `gb18030` is the current DLL's behaviour.
"""

from __future__ import annotations

import http.client
import json
from datetime import datetime
from urllib.parse import urlsplit


class ChsInterfaceYn:
    def __init__(self, *, charset: str = "gb18030", timeout: float = 30.0) -> None:
        self.charset = charset
        self.timeout = timeout
        self.url = ""
        self.fixmedins_code = ""
        self.infosyscode = ""
        self.infosyssign = ""

    # ------------------------------------------------------------------------ the DLL's functions
    def init(self, fixmedins_code: str, infosyscode: str, infosyssign: str, url: str) -> tuple[int, str]:
        """Init: remember the institution and credentials, and shake hands with the server (infno 0000)."""
        self.fixmedins_code, self.infosyscode, self.infosyssign, self.url = (
            fixmedins_code,
            infosyscode,
            infosyssign,
            url,
        )
        envelope = {
            "infno": "0000",
            "msgid": "00000000",
            "mdtrtarea_admvs": "530000",
            "insuplc_admdvs": "",
            "recer_sys_code": "mbs",
            "dev_no": "",
            "dev_safe_info": "",
            "cainfo": "",
            "signtype": "",
            "infver": "1.0",
            "opter_type": "1",
            "opter": "n0000001",
            "opter_name": "n0000001",
            "inf_time": f"{datetime.now():%Y-%m-%d %H:%M:%S}",
            "fixmedins_code": fixmedins_code,
            "fixmedins_name": "",
            "sign_no": "",
            "input": {},
        }
        ret, answer, err = self._post(envelope)
        if ret != 0:
            return ret, err
        if str(answer.get("infcode")) != "0":
            return -1, str(answer.get("err_msg") or "")
        return 0, ""

    def business_handle(self, input_data: bytes) -> tuple[int, bytes, bytes]:
        """BusinessHandle: JSON in the ANSI code page (GBK) in, the answer in the same code page out."""
        try:
            text = input_data.decode("gb18030")
        except UnicodeDecodeError as exc:
            return -1, b"", self._encode(f"input is not GBK/GB18030 text at byte {exc.start}")
        ret, output, err = self.business_handle_w(text)
        return ret, self._encode(output), self._encode(err)

    def business_handle_w(self, input_data: str) -> tuple[int, str, str]:
        """BusinessHandleW: the same with Unicode strings (no code page on the HIS side)."""
        if not self.url:
            return -1, "", "Init was not called"
        try:
            envelope = json.loads(input_data)
        except ValueError as exc:
            return -1, "", f"input is not JSON: {exc}"
        if not isinstance(envelope, dict):
            return -1, "", "input must be the JSON envelope object"
        envelope.setdefault("fixmedins_code", self.fixmedins_code)
        ret, answer, err = self._post(envelope)
        if ret != 0:
            return ret, "", err
        return 0, json.dumps(answer, ensure_ascii=False), ""

    # ------------------------------------------------------------------------------- the wire
    def _encode(self, text: str) -> bytes:
        return text.encode(self.charset, errors="replace")

    def _post(self, envelope: dict) -> tuple[int, dict, str]:
        envelope = dict(envelope, infosyscode=self.infosyscode, infosyssign=self.infosyssign)
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            return -1, {}, f"url {self.url!r} is not http://host:port/.../eapdomain/callService"
        body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=self.timeout)
        try:
            conn.request("POST", parts.path or "/", body, {"Content-Type": "application/json;charset=UTF-8"})
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            return -1, {}, f"服务请求组件 请求失败: {exc}"
        finally:
            conn.close()
        if resp.status != 200:
            return -1, {}, f"服务端返回异常: HTTP {resp.status}"
        try:
            answer = json.loads(data.decode("utf-8"))
        except ValueError:
            return -1, {}, "服务端返回异常: the answer is not JSON"
        return (0, answer, "") if isinstance(answer, dict) else (-1, {}, "服务端返回异常: not a JSON object")
