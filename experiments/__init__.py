"""Records of experiments: each script's docstring has the command that produced its figures.

Run them as modules from the repository root, e.g.
``.venv/bin/python -m experiments.benchmarks.stylize_speed --skip_memory``.
Their command line is absl flags, parsed as ``script.py`` here describes.
"""
