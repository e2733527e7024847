"""Loaded by every Python started with tests/cuda_emulator on PYTHONPATH (run.py sets it up).

With MINIGPT_CUDA_EMULATOR set to the path of an emulated build, that build becomes minigpt._cuda
before anything imports minigpt, and `import cupy` finds the NumPy stand-in beside this file; so
child processes that tests start (python -c ..., the minigpt CLI) run backend="cuda" emulated too.
"""
import importlib.util
import os
import sys

_path = os.environ.get("MINIGPT_CUDA_EMULATOR")
if _path:
    _spec = importlib.util.spec_from_file_location("minigpt._cuda", _path)
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    sys.modules["minigpt._cuda"] = _module
