"""ONNX export and cache of cross-encoders, now :mod:`inpars.scoring.onnx`; its names are re-exported here."""

from __future__ import annotations

from inpars.scoring.onnx import ONNX_OPSET, onnx_model_path, ort_session

__all__ = ["ONNX_OPSET", "onnx_model_path", "ort_session"]
