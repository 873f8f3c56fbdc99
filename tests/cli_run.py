"""Running the CLIs in-process as a user meets them, for the tests of every CLI: the exit code and
what reached stdout and stderr, and the one-line error a user mistake must give."""
from __future__ import annotations

import contextlib
import io

FAST = ["--steps", "30", "--batch", "256", "--device", "cpu", "-q"]   # an ntc-compress in seconds


def run(main, argv) -> tuple[int, str, str]:
    """Call a CLI's main(argv) in-process; argparse's SystemExit counts as the exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def one_line_error(err: str, prog: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    return lines[0]
