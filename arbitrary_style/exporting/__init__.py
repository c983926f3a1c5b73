"""Export of style models for deployment: SavedModel, TFLite (float, int8), ONNX.

``python -m arbitrary_style.export`` is the command; the library parts:

* graphs.py: the model's own methods as TensorFlow functions (jax2tf) and the SavedModel;
* converters.py: TFLite and ONNX files from it, by TensorFlow's converter and tf2onnx;
* files.py: the output folder's layout and ``manifest.json``;
* checks.py: every file run in its runtime and compared with ``Stylizer``.

Core ML is not exported: coremltools (9.0) converts TensorFlow graphs of
plain TF ops, PyTorch or its own MIL, and none of its front ends reads the
``XlaCallModule`` (StableHLO) that jax2tf writes, nor TFLite or ONNX. A
Core ML export needs the network rebuilt in TF ops or MIL, predictor trunks
(MobileNetV2, Inception-v3) included: a second copy of the model that the
converters above avoid.
"""
