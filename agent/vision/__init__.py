"""On-device vision: sources, preprocessing, the ONNX engine, adapters, tracking, zones and rules."""
