"""``inpars export``: synthetic queries and training data as a Hugging Face dataset or the original's TSV."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inpars.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    from inpars.export import EXPORT_FORMATS

    p = subparsers.add_parser(
        "export",
        help="export queries and training data (Hugging Face dataset, or the original InPars TSV)",
        description=(
            "--format hf writes a dataset folder: Parquet files (queries/, training/) and a README.md dataset "
            "card stating the generator, the prompt, the filter steps and the licence, loadable with "
            "datasets.load_dataset(OUT, 'queries'). --format original-triples / original-pairs writes the "
            "training examples as the original InPars toolkit's triples TSV (query, positive, negative) or "
            "pairs TSV (query, passage, 0/1), which its 'python -m inpars.train --triples/--pairs' reads."
        ),
    )
    p.add_argument("--format", "-f", choices=EXPORT_FORMATS, default="hf", help="output format (default hf)")
    p.add_argument("--generated", default=None, metavar="JSONL",
                   help="generated or filtered queries ('inpars generate' / 'inpars filter' output; hf only)")
    p.add_argument("--train", default=None, metavar="FILE",
                   help="training examples: 'inpars negatives' JSONL or the original's triples/pairs TSV")
    p.add_argument("--run", default=None, metavar="RUN_DIR",
                   help="take both from a run folder of 'inpars run' (its filtered queries and training examples)")
    p.add_argument("--out", "-o", required=True, help="folder (hf, must not exist) or TSV file to write")
    p.add_argument("--name", default=None, help="dataset name in the card (default: the folder name)")
    p.add_argument("--license", default=None,
                   help="licence identifier for the card (default: 'unknown', with a request to set it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.export import export_hf, export_original

    for flag, value in (("--name", args.name), ("--license", args.license)):
        if value is not None and (not value.strip() or any(ord(c) < 32 or c in "\x7f\u2028\u2029" for c in value)):
            raise ConfigError(f"{flag}: one line of printable text (it goes into the dataset card's YAML header)")
    if args.run:
        from inpars.layout import output_path

        if args.generated or args.train:
            raise ConfigError("--run takes the queries and examples of a run: drop --generated and --train")
        if not (Path(args.run) / "config.json").is_file():
            raise ConfigError(f"--run {args.run}: not a run folder of 'inpars run' (no config.json)")
        found = {"generated": output_path(args.run, "filter", "filtered"), "train": output_path(args.run, "negatives", "train")}
        for key, path in found.items():
            if path.is_file():
                setattr(args, key, str(path))
        if not (args.generated or args.train):
            raise ConfigError(f"--run {args.run}: the run has not written its queries yet")
        if args.format != "hf":
            args.generated = None
    if args.format == "hf":
        if not args.generated and not args.train:
            raise ConfigError("nothing to export: give --generated and/or --train")
        counts = export_hf(args.out, generated=args.generated, train=args.train, name=args.name,
                           license=args.license)
        parts = ", ".join(f"{config}: {n} rows" for config, n in counts.items())
        print(f"{args.out}: Hugging Face dataset ({parts}); card in {args.out}/README.md")
        return 0
    if not args.train:
        raise ConfigError(f"--format {args.format} needs --train (training examples)")
    if args.generated:
        raise ConfigError(f"--format {args.format} writes training examples only; drop --generated")
    from inpars.safety import check_output

    check_output(args.out, [args.train])
    if Path(args.out).exists():  # as the hf format does: an export never replaces a file it did not write
        raise ConfigError(f"--out {args.out} exists; remove it or choose another path")
    n = export_original(args.out, args.train, args.format)
    print(f"{args.out}: {n} lines in the original InPars {args.format.removeprefix('original-')} TSV format")
    return 0
