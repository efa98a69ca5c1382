"""Collection rules for the whole repository: the explorer's modules import Starlette (the
optional extra ``web``), so their doctests are skipped where it is not installed."""

import importlib.util

collect_ignore_glob = []
if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
    collect_ignore_glob.append("cnnlab/explorer/*.py")
