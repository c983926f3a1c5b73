r"""Prepares a TFDS source once, before training:

    python -m arbitrary_style.data.prepare painter_by_numbers --manual_dir=DIR [--data_dir=DIR]
    python -m arbitrary_style.data.prepare dtd [--data_dir=DIR]

Training prepares a missing dataset on first use too; on several hosts sharing
one data dir, run this once first so they do not all write it at the same time.
``--data_dir`` is ``config.data.tfds_data_dir``, ``--manual_dir``
``config.data.manual_dir``.
"""

from __future__ import annotations

import argparse
import logging

from arbitrary_style.data import sources
from arbitrary_style.registry import lookup


def main(argv=None) -> None:
    tfds_names = [n for n in sources.SOURCES if n in sources._TFDS_SPLITS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"one of: {', '.join(sorted(tfds_names))}")
    parser.add_argument("--manual_dir", default=None)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args(argv)
    lookup("TFDS source", args.name, {n: n for n in tfds_names})
    logging.basicConfig(level=logging.INFO)
    source = sources.TFDSSource(args.name, "train", args.data_dir, args.manual_dir)
    builder = source.builder()  # prepares it if needed
    for split, info in builder.info.splits.items():
        print(f"{args.name} {split}: {info.num_examples} examples in {builder.data_dir}")


if __name__ == "__main__":
    main()
