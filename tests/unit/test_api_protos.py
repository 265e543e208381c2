"""The committed gRPC code is what scripts/protos.sh makes from proto/atp/v1 today."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "sdk" / "wire" / "pb"


def test_generated_code_matches_the_protos(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "gen"), "PYTHON": sys.executable}
    subprocess.run(["bash", str(REPO / "scripts" / "protos.sh")], env=env, check=True)
    fresh = {p.name: p.read_text() for p in (tmp_path / "gen").iterdir()}
    committed = {p.name: p.read_text() for p in GENERATED.iterdir() if p.is_file()}
    assert fresh == committed, "run scripts/protos.sh and commit sdk/wire/pb"
