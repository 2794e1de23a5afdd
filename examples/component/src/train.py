"""A stand-in training script: reads the data folder, writes a model folder."""

import argparse
import pathlib

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--max-epochs", type=int, default=1)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--out", required=True)
args = parser.parse_args()

out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
files = sorted(p.name for p in pathlib.Path(args.data).iterdir())
(out / "trained.txt").write_text(f"lr={args.lr} epochs={args.max_epochs} files={files}\n")
print(f"trained on {len(files)} files")
