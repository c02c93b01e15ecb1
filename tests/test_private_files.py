"""Private output files: 0600 in folders created 0700 whatever the umask, no silent overwrite, no symlinks."""

import os
import stat

import pytest

from harness.private_files import OutputExists, open_private, private_dir, write_private


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the worst case: nothing masked
    yield
    os.umask(old)


def test_files_are_0600_and_created_folders_0700_even_with_umask_0(tmp_path, open_umask):
    target = tmp_path / "a" / "b" / "report.html"
    write_private(target, "<p>张三</p>")
    assert mode(target) == 0o600 and mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
    assert target.read_text(encoding="utf-8") == "<p>张三</p>"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    write_private(shared / "x.hl7", b"MSH|")
    assert mode(shared) == 0o755 and mode(shared / "x.hl7") == 0o600  # an existing folder is left alone


def test_an_existing_file_is_kept_unless_forced_and_then_tightened(tmp_path):
    target = tmp_path / "x.hl7"
    target.write_bytes(b"old")
    target.chmod(0o644)
    with pytest.raises(OutputExists, match="--force"):
        write_private(target, b"new")
    assert target.read_bytes() == b"old"
    write_private(target, b"new", force=True)
    assert target.read_bytes() == b"new" and mode(target) == 0o600


def test_a_symlink_where_the_output_goes_is_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "out.hl7"
    link.symlink_to(victim)
    for force in (False, True):
        with pytest.raises(OutputExists, match="symbolic link"):
            write_private(link, b"evil", force=force)
    assert victim.read_bytes() == b"keep"
    with pytest.raises(NotADirectoryError):
        private_dir(victim)
    with pytest.raises(ValueError):
        open_private(tmp_path / "y", "r")
