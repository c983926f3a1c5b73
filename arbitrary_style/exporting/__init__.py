"""Export of style models for deployment: SavedModel, TFLite (float, int8), ONNX, Core ML.

``python -m arbitrary_style.export`` is the command; the library parts:

* graphs.py: the model's own methods as TensorFlow functions (jax2tf) and the SavedModel;
* converters.py: TFLite and ONNX files from it, by TensorFlow's converter and tf2onnx;
* tf_ops.py: the transformer in plain TensorFlow ops, from the model's weights;
* coreml.py: the Core ML transformer, converted from tf_ops.py's graph by coremltools;
* files.py: the output folder's layout and ``manifest.json``;
* checks.py: every file run in its runtime and compared with ``Stylizer``.

Core ML takes the second graph because coremltools (9.0) converts TensorFlow
graphs of plain TF ops, PyTorch or its own MIL, and none of its front ends
reads the ``XlaCallModule`` (StableHLO) that jax2tf writes, nor TFLite or
ONNX. Only the transformer is exported that way: the predictor's trunk
(MobileNetV2, Inception-v3) would be a second copy of a large network
(coreml.py ``PREDICTOR_NOTE``).
"""
