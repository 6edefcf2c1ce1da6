"""Save one PNG of what an evaluation report shows (docs/evaluation.png): from a `train.evaluate` run folder
and a `train.finetune` run folder (the README's main job makes both on the built-in sample), one view's
t-SNE, class similarity, soft alignment, cosine histograms and neighbour strips, and the ensemble's
confusion matrix, side by side.

    .venv/bin/python bench/make_eval_examples.py [--evaluate runs/sample-evaluate] [--finetune runs/sample-finetune]
        [--view flow_tvl1] [--out docs/evaluation.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

PANELS = ("tsne.png", "class_similarity.png", "alignment_1.png", "cosine_histograms.png", "neighbours.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--evaluate", default="runs/sample-evaluate", help="a train.evaluate run folder")
    p.add_argument("--finetune", default="runs/sample-finetune", help="a train.finetune run folder")
    p.add_argument("--view", default="flow_tvl1", help="the view whose figures are shown")
    p.add_argument("--out", default="docs/evaluation.png")
    args = p.parse_args(argv)
    paths = [Path(args.evaluate) / args.view / name for name in PANELS]
    paths += sorted(Path(args.finetune).glob("*/labels100/confusion_*.png"))[:1]
    missing = [str(x) for x in paths if not x.is_file()]
    if missing or len(paths) != len(PANELS) + 1:
        print(f"error: figures missing ({', '.join(missing) or 'no confusion matrix'}): run the README's main job "
              f"first", file=sys.stderr)
        return 2
    fig = Figure(figsize=(18, 10))
    FigureCanvasAgg(fig)
    for k, path in enumerate(paths):
        ax = fig.add_subplot(2, 3, k + 1)
        ax.imshow(imread(path))
        ax.set_axis_off()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
