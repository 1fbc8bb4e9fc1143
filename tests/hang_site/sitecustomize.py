"""Test-only fault injection, loaded by Python at start-up when this directory is on PYTHONPATH (see `tests/hang.py`).

With PANGU_TEST_HANG=STEP:WHERE, a training run started fresh (not resumed) whose checkpoint directory contains WHERE
waits to be killed right after its step-STEP checkpoint: `CheckpointCallback.on_train_step_end` is wrapped as
`pangu_codeclm.train.callbacks` is imported. Nothing is imported before that, so other processes are unaffected.
"""
import importlib.abc
import importlib.util
import os
import sys
import time

TARGET = "pangu_codeclm.train.callbacks"


def _hang_after(module, step, where):
    original = module.CheckpointCallback.on_train_step_end

    def on_train_step_end(self, run_context):
        original(self, run_context)
        reached = self.start_step + int(run_context.original_args().cur_step_num)
        if reached == step and self.resume_info is None and where in self.directory:
            module.logger.warning("test hook PANGU_TEST_HANG: step %d reached, waiting to be killed", reached)
            while True:
                time.sleep(1)

    module.CheckpointCallback.on_train_step_end = on_train_step_end


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, step, where):
        self.step, self.where = step, where

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _hang_after(module, self.step, self.where)

        spec.loader.exec_module = exec_and_patch
        return spec


_spec = os.environ.get("PANGU_TEST_HANG")
if _spec:
    _step, _, _where = _spec.partition(":")
    sys.meta_path.insert(0, _PatchOnImport(int(_step), _where))
