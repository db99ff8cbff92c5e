"""ONNX sessions inside the CPU budget."""

from pathlib import Path

import onnxruntime


def single_thread_session(path: Path) -> onnxruntime.InferenceSession:
    """An ONNX session on one thread: the CPU budget decides how many run at once
    (onnxruntime's default would take every core for each call)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
