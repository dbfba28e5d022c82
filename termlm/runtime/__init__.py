"""The laptop runtime: numpy and onnxruntime, never torch."""
