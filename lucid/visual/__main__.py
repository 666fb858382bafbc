"""CLI: ``python -m lucid.visual chart NAME [--input N,C,H,W] [-o FILE]`` and ``summary NAME``.

Model overrides go through ``--set key=value`` (Python literals), e.g.
``python -m lucid.visual summary resnet_18 --input 1,1,28,28 --set in_channels=1 --set stem_type='"cifar"'``.
``--config FILE`` takes the model (name, num_classes, overrides) and the input shape
(1, data.channels, data.image_size, data.image_size) from a run config instead.
"""
from __future__ import annotations

import argparse
import ast
import sys

from lucid.models import create_model, list_models
from lucid.version import add_version
from lucid.visual.mermaid import DIRECTIONS, build_mermaid_chart
from lucid.visual.summary import summary


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input must look like 1,3,224,224, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"--input needs positive sizes, got {text!r}")
    return shape


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare word such as cifar is taken as a string


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lucid.visual", description="Mermaid charts and summaries of models.")
    add_version(p)
    sub = p.add_subparsers(dest="command", required=True)
    for command, help_text in (("chart", "write a Mermaid flowchart"), ("summary", "print a layer table")):
        c = sub.add_parser(command, help=help_text)
        c.add_argument("model", nargs="?", help=f"registered model name ({', '.join(list_models())})")
        c.add_argument("--config", metavar="FILE", help="take the model and input size from a run config (TOML)")
        c.add_argument("--input", type=_shape, help="input shape N,C,H,W (default 1,3,224,224 or the config's)")
        c.add_argument("--depth", type=int, default=2, help="module levels to open")
        c.add_argument("--set", type=_override, action="append", default=[], metavar="KEY=VALUE",
                       help="model override, e.g. num_classes=10 or stem_type=cifar (repeatable)")
        if command == "chart":
            c.add_argument("-o", "--output", help="file to write (default: stdout)")
            c.add_argument("--direction", choices=DIRECTIONS, default="TB")
            c.add_argument("--no-collapse", action="store_true", help="draw every repeated block")
            c.add_argument("--no-shapes", action="store_true", help="omit the shape captions")
            c.add_argument("--params", action="store_true", help="caption nodes and subgraphs with parameter counts")
    return p


def _model_and_input(args) -> tuple[object, tuple[int, ...], str]:
    """(model, input shape, title) from the model name or the run config of ``args``."""
    if (args.model is None) == (args.config is None):
        raise ValueError("give either a model name or --config FILE" + (", not both" if args.model else ""))
    if args.model is not None:
        return create_model(args.model, **dict(args.set)), args.input or (1, 3, 224, 224), args.model
    from lucid.train.config import load_config  # imported here: only for --config

    cfg = load_config(args.config)
    model = create_model(cfg.model.name, num_classes=cfg.model.num_classes, **(cfg.model.overrides | dict(args.set)))
    shape = args.input or (1, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    return model, shape, cfg.model.name


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        model, input_shape, title = _model_and_input(args)
        if args.command == "summary":
            summary(model, input_shape, depth=args.depth)
            return 0
        text = build_mermaid_chart(model, input_shape, depth=args.depth, collapse_repeats=not args.no_collapse,
                                   show_shapes=not args.no_shapes, direction=args.direction, title=title,
                                   show_params=args.params)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
