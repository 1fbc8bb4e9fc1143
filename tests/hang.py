"""Environment for a subprocess whose training run hangs after a step (`hang_site/sitecustomize.py`), so a test can
kill it there and check the resume."""
import os
import pathlib

HANG_SITE = pathlib.Path(__file__).resolve().parent / "hang_site"


def hang_env(step, where=""):
    """Variables to add to a subprocess's environment: its fresh training run whose checkpoint directory contains
    `where` waits to be killed after step `step`'s checkpoint."""
    path = [str(HANG_SITE)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {"PYTHONPATH": os.pathsep.join(path), "PANGU_TEST_HANG": f"{step}:{where}"}
