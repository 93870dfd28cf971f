"""Where tests find the files they read: inside this checkout only, never beside it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# SkyPilot's PyTorch quickstart (train.yaml, train-multinode.yaml, train.py): the seed
# task every dryrun/render/golden test uses.
QUICKSTART = REPO / "examples" / "quickstart"
