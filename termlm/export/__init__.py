"""Export (torch + onnx): a trained run -> one self-contained, checked ONNX model file."""

from __future__ import annotations

from termlm.export.exporter import ExportReport, export_model
from termlm.export.run_loader import RunInfo, load_run

__all__ = ["ExportReport", "RunInfo", "export_model", "load_run"]
