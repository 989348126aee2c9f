"""`vhc --help` stays fast: the heavy libraries load only when a command needs them."""

import subprocess
import sys


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, ccxtkit.cli.app\n"
        "heavy = [m for m in ('ccxt', 'duckdb', 'pydantic', 'pyarrow', 'hvac', 'boto3', "
        "'prometheus_client') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
