"""Import every module that registers a class with mindformers, so run yamls can name them by `type`:
CONFIG PanguCodeCLMConfig, MODELS PanguCodeCLMForCausalLM, DATASET PanguCodeCLMDataset, WRAPPER PanguTrainOneStepCell
and HysteresisLossScaleUpdateCell, LR FlooredCosineWithWarmUpLR, TRAINER PanguCodeCLMTrainer."""
import importlib
import logging

logger = logging.getLogger(__name__)


def register_all(extra_modules=()):
    """Import the registering modules (and any `extra_modules`, e.g. a test's toy model)."""
    from .. import config  # noqa: F401  (CONFIG)
    from . import dataset, optim, wrapper  # noqa: F401  (DATASET, LR + TRAINER, WRAPPER)
    try:
        importlib.import_module("pangu_codeclm.model.pangu")  # MODELS
    except ModuleNotFoundError as exc:
        if exc.name != "pangu_codeclm.model.pangu":
            raise
        logger.warning("pangu_codeclm.model.pangu is not available; only extra modules' models are registered")
    for name in extra_modules:
        importlib.import_module(name)
