"""9101 文件上传 and 9102 文件下载: files the centre keeps for a while under a `file_qury_no`.

Downloads (catalogues 1301-1315, reconciliation results 3202) and uploads (3202's detail file) are zip
archives holding one tab-separated UTF-8 .txt, as HIS clients write and read them. A 9102 answer is
the file's bytes, not a JSON envelope; an error is still the JSON envelope with infcode -1.
"""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

from harness.simulators.medins.call import Call, FileReply, MedinsError
from harness.simulators.medins.centre import Centre
from harness.simulators.medins.state import StoredFile
from harness.spec.medins.checks import file_bytes

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_FILES_BYTES = 64 * 1024 * 1024


def make_zip(name: str, rows: list[list[str]]) -> bytes:
    text = "".join("\t".join(str(v) for v in row) + "\n" for row in rows)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text.encode("utf-8"))
    return out.getvalue()


def read_rows(content: bytes, at: str) -> list[list[str]]:
    """The tab-separated rows of an uploaded file: a zip's first .txt, or the bytes themselves as text."""
    data = content
    if content[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if not names:
                    raise MedinsError(f"{at}: the uploaded zip is empty")
                with archive.open(names[0]) as member:  # bounded: a zip bomb stops at the limit
                    data = member.read(MAX_FILE_BYTES + 1)
                if len(data) > MAX_FILE_BYTES:
                    raise MedinsError(f"{at}: {names[0]} unpacks to more than {MAX_FILE_BYTES} bytes")
        except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as exc:
            raise MedinsError(f"{at}: the uploaded file is not a readable zip ({exc})") from None
    for charset in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(charset)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes every byte sequence it is given whole
        raise MedinsError(f"{at}: the file is neither UTF-8 nor GB18030 text")
    return [line.split("\t") for line in text.splitlines() if line.strip()]


def store(centre: Centre, filename: str, content: bytes, owner: str, kind: str) -> StoredFile:
    total = sum(len(f.content) for f in centre.state.files.values())
    while centre.state.files and total + len(content) > MAX_FILES_BYTES:
        _, oldest = centre.state.files.popitem(last=False)
        total -= len(oldest.content)
    days = centre.spec.simulator["files"]["keep_days"]
    stored = StoredFile(
        centre.next_id("F"), filename, content, owner, centre.now() + timedelta(days=days), kind
    )
    centre.state.files[stored.file_qury_no] = stored
    return stored


def upload(centre: Centre, call: Call) -> dict:
    node = call.node()
    content = file_bytes(node["in"])
    if len(content) > MAX_FILE_BYTES:
        raise MedinsError(f"input.fsUploadIn.in: {len(content)} bytes; at most {MAX_FILE_BYTES}")
    if str(node["fixmedins_code"]) != call.fixmedins_code:
        raise MedinsError(
            f"input.fsUploadIn.fixmedins_code: {node['fixmedins_code']} is not the envelope's "
            f"{call.fixmedins_code}"
        )
    stored = store(centre, str(node["filename"]), content, call.fixmedins_code, "upload")
    return {
        "file_qury_no": stored.file_qury_no,
        "filename": stored.filename,
        "dld_endtime": f"{stored.expires:%Y-%m-%d %H:%M:%S}",
    }


def download(centre: Centre, call: Call) -> FileReply:
    node = call.node()
    number, filename, owner = str(node["file_qury_no"]), str(node["filename"]), str(node["fixmedins_code"])
    stored = centre.state.files.get(number)
    if stored is None:
        raise MedinsError(f"input.fsDownloadIn.file_qury_no: no file {number} (expired or never issued)")
    if stored.expires < centre.now():
        raise MedinsError(
            f"input.fsDownloadIn.file_qury_no: file {number} expired at {stored.expires:%Y-%m-%d %H:%M:%S}"
        )
    shared = call.params["shared_name"]  # catalogue files are asked for with the fixed name `plc`
    if filename != stored.filename and not (filename == shared and stored.kind == "catalogue"):
        raise MedinsError(
            f"input.fsDownloadIn.filename: {filename} is not file {number}'s name {stored.filename}"
        )
    if owner not in (stored.fixmedins_code, call.fixmedins_code) and not (
        owner == shared and stored.kind == "catalogue"
    ):
        raise MedinsError(f"input.fsDownloadIn.fixmedins_code: {owner} may not download file {number}")
    if stored.kind != "catalogue" and stored.fixmedins_code != call.fixmedins_code:
        raise MedinsError(f"input.fsDownloadIn.file_qury_no: file {number} belongs to another institution")
    return FileReply(stored.filename, stored.content)


def later(centre: Centre, days: int = 1) -> str:
    return f"{centre.now() + timedelta(days=days):%Y-%m-%d %H:%M:%S}"
