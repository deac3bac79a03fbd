"""The `edge-mtl` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "models" / "tritask_mnv3l.yaml"


def _cmd_synth(args: argparse.Namespace) -> int:
    from edge_mtl.data.format import parse_drop_labels, synthesize

    drops = parse_drop_labels(args.drop_labels)
    root = synthesize(args.out, args.num, args.seed, drops, workers=args.workers,
                      sequence=args.sequence, force=args.force)
    print(f"wrote {args.num} samples to {root}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from edge_mtl.config import Config, apply_overrides
    from edge_mtl.train import train

    cfg = Config.load(args.config)
    overrides = list(args.set or [])
    for key, value in (("data", args.data), ("out", args.out), ("steps", args.steps)):
        if value is not None:
            overrides.append(f"train.{key}={value}")
    cfg = apply_overrides(cfg, overrides)
    path = train(cfg, resume=args.resume)
    print(f"checkpoint: {path}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from edge_mtl.evaluate import evaluate

    result = evaluate(args.checkpoint, args.data, limit=args.limit)
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    from edge_mtl.checkpoint import release, sha256

    dst = release(args.checkpoint, args.out)
    print(f"{dst}  sha256={sha256(dst)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-mtl", description="Multi-task perception for edge GPUs.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="render a synthetic driving dataset")
    s.add_argument("--out", required=True, help="output folder (must not hold a dataset yet)")
    s.add_argument("--num", type=int, required=True, help="number of frames")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--drop-labels", default=None,
                   help="per-task probability of dropping a sample's label, e.g. det=0.3,lane=0.3,depth=0.5")
    s.add_argument("--workers", type=int, default=None, help="render processes (default: all cores)")
    s.add_argument("--sequence", action="store_true",
                   help="render one temporally coherent drive (30 FPS) instead of independent scenes")
    s.add_argument("--force", action="store_true", help="replace a dataset already in --out")
    s.set_defaults(func=_cmd_synth)

    t = sub.add_parser("train", help="train the tri-task network")
    t.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    t.add_argument("--data", help="training dataset folder (overrides train.data)")
    t.add_argument("--out", help="run folder (overrides train.out)")
    t.add_argument("--steps", type=int, help="optimizer steps (overrides train.steps)")
    t.add_argument("--resume", help="checkpoint to resume from (e.g. RUN/last.pt)")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config value, e.g. --set train.batch_size=4")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint on a dataset folder")
    e.add_argument("checkpoint")
    e.add_argument("--data", required=True, help="dataset folder")
    e.add_argument("--json", help="write the evaluation JSON here")
    e.add_argument("--limit", type=int, help="evaluate only the first N samples")
    e.set_defaults(func=_cmd_eval)

    r = sub.add_parser("release", help="strip a training checkpoint into a small fp16 release file")
    r.add_argument("checkpoint")
    r.add_argument("--out", required=True)
    r.set_defaults(func=_cmd_release)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"edge-mtl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
