"""Names for files LOBA writes are checked piece by piece, before any work."""

from __future__ import annotations

import pytest

from loba.errors import ConfigError
from loba.paths import MAX_PIECE_BYTES, check_relative_name


@pytest.mark.parametrize("name", ["loba/slider", "a/x/same", "my slider (v2)", "ünïcode/スライダー", "a" * MAX_PIECE_BYTES])
def test_plain_relative_names_pass(name):
    assert check_relative_name(f"  {name} ", "filename_prefix") == name


@pytest.mark.parametrize("name, fix", [
    ("", "is empty"), ("loba/\x00slider", "'\\\\x00'"), ("a" * 300, "300 bytes long"), ("x/" + "é" * 150, "300 bytes"),
    ("/etc/slider", "absolute"), ("C:/sliders/x", "absolute"), ("../outside", "'..'"), ("a//b", "''"), ("a/./b", "'.'"),
    ("a\\b", "'\\\\\\\\'"), ("a/b?", "'?'"), ("tab\there", "'\\\\t'"), ("ends.", "portable"), ("loba/CON", "portable"),
    ("x" * 1001, "1001 characters"),
])
def test_names_a_file_system_refuses_fail_naming_the_field_and_the_piece(name, fix):
    with pytest.raises(ConfigError, match=f"^filename_prefix: .*{fix}") as caught:
        check_relative_name(name, "filename_prefix")
    assert "e.g. 'loba/my_slider'" in str(caught.value)


def test_the_longest_accepted_piece_still_fits_with_the_counter_and_temp_suffix(tmp_path):
    from loba.sliders.atomic import atomic_write_bytes

    name = check_relative_name("é" * (MAX_PIECE_BYTES // 2), "filename_prefix")
    written = atomic_write_bytes(tmp_path / f"{name}_00001_.safetensors", b"x")
    assert written.read_bytes() == b"x"
