"""``run_cli``: exit codes, one-line user errors on stderr, first-line mode, --debug re-raise."""

from __future__ import annotations

import pytest

from spatialgen.errors import MediaError, SpatialgenError, run_cli


def _raise(err: Exception):
    def body() -> None:
        raise err

    return body


def test_exit_code_of_the_body() -> None:
    assert run_cli("prog", lambda: None) == 0
    assert run_cli("prog", lambda: 3) == 3


def test_user_error_is_one_line_and_exit_2(capsys) -> None:
    assert run_cli("spatialgen x", _raise(MediaError("a.wav", "not found"))) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "spatialgen x: error: a.wav: not found\n"


def test_first_line_and_extra_error_types(capsys) -> None:
    body = _raise(ValueError("bad --n\ndetails"))
    assert run_cli("p", body, catch=(SpatialgenError, ValueError), first_line=True) == 2
    assert capsys.readouterr().err == "p: error: bad --n\n"
    assert run_cli("p", body, catch=(ValueError,)) == 2
    assert capsys.readouterr().err == "p: error: bad --n\ndetails\n"


def test_uncaught_and_debug_propagate(capsys) -> None:
    with pytest.raises(ValueError, match="bug"):
        run_cli("p", _raise(ValueError("bug")))
    with pytest.raises(SpatialgenError, match="user"):
        run_cli("p", _raise(SpatialgenError("user")), debug=True)
    assert capsys.readouterr().err == ""
