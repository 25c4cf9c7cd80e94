"""cli/__init__.py main(): closed pipes, verbatim help epilogs, a silent -q (issue 9)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from TLTTrackerLib.cli import main
from bad_input import ROOT


class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise io.UnsupportedOperation("no descriptor")


def test_broken_pipe_is_a_quiet_exit(monkeypatch, tmp_path, capsys):
    import json

    from test_cli_evaluate import CASES

    (tmp_path / "cases.json").write_text(json.dumps(CASES))
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["evaluate", str(tmp_path / "cases.json")]) == 141  # print() into a closed pipe
    assert "Traceback" not in capsys.readouterr().err


def test_broken_pipe_through_a_real_pipe(tmp_path):
    """`tlt-tracker evaluate ... | true` (reader gone before the first write): exit 141, no traceback and no
    "Exception ignored" at interpreter exit."""
    import json

    from test_cli_evaluate import CASES

    (tmp_path / "cases.json").write_text(json.dumps(CASES))
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from TLTTrackerLib.cli import main; "
            f"time.sleep(0.5); sys.exit(main(['evaluate', {str(tmp_path / 'cases.json')!r}]))")
    script = f"'{sys.executable}' -c \"{code}\" | true; exit ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


def test_help_epilog_examples_stay_verbatim(capsys):
    with pytest.raises(SystemExit):
        main(["track-batch", "--help"])
    out = capsys.readouterr().out
    assert "  torchrun --nproc-per-node 8 -m TLTTrackerLib.cli track-batch pairs.csv --out runs/" in out
    assert "--nproc-per- node" not in out


def test_quiet_or_no_terminal_means_no_progress_bar(monkeypatch, capsys):
    from TLTTrackerLib.cli.track import _progress_printer

    report, close = _progress_printer(False, quiet=True)
    report(0.5, "registering")
    close()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    report, close = _progress_printer(False, quiet=False)
    report(0.5, "registering")
    close()
    assert capsys.readouterr().err == ""
