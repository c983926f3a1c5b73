"""Speed and memory benchmarks; the figures and their commands are in README.md here.

Entry points (``python -m experiments.benchmarks.<name>`` from the repository
root): ``stylize_speed``, ``train_step``, ``input_pipeline``, ``tf_peer``;
``stylize_random`` is the child process of ``stylize_speed``'s memory runs;
``common`` holds what they share, ``onnx_export`` and ``tf_peer`` the peers.
"""
