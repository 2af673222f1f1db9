"""Shared by the tests of the CLI's bad-input errors: run `selfimprove ARGS` in-process and require
a clean failure (non-zero exit, a message, no traceback)."""
import pytest

from selfimprove.cli import main


def cli_fails(args, capsys) -> str:
    """stderr of `selfimprove ARGS`, which must exit non-zero without a traceback."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err
