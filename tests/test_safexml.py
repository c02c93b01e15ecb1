import pytest

from harness import safexml


def test_parses_plain_xml():
    root = safexml.parse(b"<a xmlns='urn:x'><b>1</b></a>")
    assert safexml.local_name(root) == "a"
    assert safexml.local_name(root[0]) == "b"


def test_refuses_billion_laughs():
    bomb = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"""
    with pytest.raises(safexml.UnsafeXMLError, match="DTD"):
        safexml.parse(bomb)


def test_never_resolves_external_entity(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'.encode()
    with pytest.raises(safexml.UnsafeXMLError):
        safexml.parse(xxe)


def test_utf16_doctype_is_refused_after_parse():
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'.encode("utf-16")
    with pytest.raises(ValueError):
        root = safexml.parse(doc)
        assert "y" not in (root.text or "")
        raise AssertionError("parsed a document with a DTD")


def test_malformed_reports_position():
    with pytest.raises(safexml.XMLSyntaxError, match="line 1"):
        safexml.parse(b"<a><b></a>")


def test_size_limit():
    with pytest.raises(safexml.UnsafeXMLError, match="exceeds"):
        safexml.parse(b"<a>" + b"x" * 100 + b"</a>", max_bytes=50)


def test_not_xml():
    with pytest.raises(safexml.XMLSyntaxError, match="not XML"):
        safexml.parse(b'{"json": true}')
