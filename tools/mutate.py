"""Mutation testing of ONE module with that module's own tests (mutmut, restricted per module).

    python tools/mutate.py cnnlab/ops/pool.py                     # every mutant of pool.py
    python tools/mutate.py cnnlab/tools/explain.py --sample 60 --seed 1
    python tools/mutate.py cnnlab/ops/conv.py --jobs 1 --tests tests/test_conv.py

mutmut (configured under ``[tool.mutmut]`` in pyproject.toml) mutates one function at a time
and runs, in forked workers, only the tests that call that function (it records which ones in a
first, instrumented run), stopping at the first failure, with a CPU-time limit per mutant. On its
own mutmut 3 mutates the whole package and runs the whole suite: far too slow on 2 cores. This
driver copies the package and tests into ``mutants/<module>/`` (ignored by git), writes there a
pyproject whose ``[tool.mutmut]`` adds ``only_mutate = [<module>]`` and the module's test files
(``TESTS`` below) as the test selection, optionally picks a random sample of the mutants, runs
mutmut, and prints the score and every surviving mutant with its line and diff.

A mutant is *killed* when a test fails; it *survives* when every test passes, or when no test
calls the mutated function ("no tests"). A mutant that runs past mutmut's time limit is a
*timeout*: mutmut counts it as killed, but a timeout is no proof that a test noticed anything
(a limit too tight for the test file's own setup "kills" every mutant). So the driver reports
time-outs apart, and ``--recheck-timeouts`` re-runs each one without mutmut's limit (the mutant
applied to the work copy, the test files run with ``pytest -x`` under a wall-clock limit of ten
times a clean run of them plus a minute): a test failing makes it killed, every test passing
makes it survived, and a run past even that limit makes it a *hang*, which counts as killed.

mutmut's limit per mutant is ``(T + timeout_constant) × timeout_multiplier`` seconds of wall time
(twice that of CPU time), where T is the time the mutant's tests took in the clean run, counting
only their call phase: a slow fixture (the explorer's test file spends ~5 s setting up its first
test) is not in T. ``TIMEOUT_CONSTANT`` below raises the constant for such test files;
``--timeout-multiplier`` and ``--timeout-constant`` set either for one run. The time-outs of
the explorer's mutants were not that, though: they were children hung on a thread pool that
did not survive mutmut's fork (see ``_AT_FORK``), which no limit would have cured.

Two blind spots of mutmut's forked children: code that ran in the parent before the fork (a
decorator such as ``kernels.jit`` applied at import, a value computed once and cached) is not
run again, so its mutants survive whatever the tests; and mutmut does not mutate decorated
functions at all (the ``@jit`` loops of ``ops/conv_compiled.py``: mutated by hand, see
tests/MUTATION.md). ``--again`` runs each survivor in a fresh process, free of the first.

The score printed is killed / (killed + survived) with time-outs left out, and the range they
could move it to; mutants judged equivalent (no behaviour changes) are listed by hand in
tests/MUTATION.md, which also gives each module's score.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:                  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants"

# module -> the test files that test it (the mutants of a module run only these).
_CONV = ["tests/test_conv.py", "tests/test_conv_algorithms.py", "tests/test_mutation_gaps.py"]
_AUTOGRAD = ["tests/test_tensor.py", "tests/test_gradcheck.py", "tests/test_mutation_gaps.py"]
_DATA = ["tests/test_data.py", "tests/test_torch_habits.py"]
_EXPLORER = ["tests/test_explorer_api.py", "tests/test_explorer_gaps.py"]   # not the browser tests
TESTS: dict[str, list[str]] = {
    "cnnlab/ops/activation.py": ["tests/test_activation.py", "tests/test_mutation_gaps.py"],
    "cnnlab/ops/conv.py": _CONV,
    "cnnlab/ops/conv_direct.py": ["tests/test_conv_algorithms.py", "tests/test_mutation_gaps.py"],
    "cnnlab/ops/kernels.py": ["tests/test_kernels.py", "tests/test_conv_algorithms.py",
                              "tests/test_mutation_gaps.py"],
    "cnnlab/ops/conv_compiled.py": ["tests/test_conv_algorithms.py", "tests/test_kernels.py",
                                    "tests/test_mutation_gaps.py"],
    "cnnlab/ops/conv_fft.py": ["tests/test_conv_algorithms.py", "tests/test_mutation_gaps.py"],
    "cnnlab/ops/parallel.py": ["tests/test_conv_algorithms.py", "tests/test_mutation_gaps.py",
                               "tests/test_kernels.py", "tests/test_fork.py"],
    "cnnlab/ops/pad.py": ["tests/test_conv.py", "tests/test_pool.py", "tests/test_shapes.py",
                          "tests/test_mutation_gaps.py"],
    "cnnlab/ops/windows.py": ["tests/test_conv.py", "tests/test_pool.py"],
    "cnnlab/ops/dropout.py": ["tests/test_dropout.py", "tests/test_mutation_gaps.py"],
    "cnnlab/ops/elementwise.py": ["tests/test_tensor.py", "tests/test_activation.py",
                                  "tests/test_mutation_gaps.py"],
    "cnnlab/ops/linear.py": ["tests/test_linear.py"],
    "cnnlab/ops/loss.py": ["tests/test_loss.py"],
    "cnnlab/ops/norm.py": ["tests/test_norm.py", "tests/test_mutation_gaps.py"],
    "cnnlab/ops/norm_compiled.py": ["tests/test_norm.py"],
    "cnnlab/ops/conv_winograd.py": ["tests/test_conv_algorithms.py"],
    "cnnlab/ops/pool.py": ["tests/test_pool.py", "tests/test_mutation_gaps.py"],
    "cnnlab/ops/pool_compiled.py": ["tests/test_pool.py"],
    "cnnlab/ops/activation_compiled.py": ["tests/test_activation.py"],
    "cnnlab/ops/shapes.py": ["tests/test_shapes.py", "tests/test_mutation_gaps.py"],
    "cnnlab/autograd/engine.py": _AUTOGRAD,
    "cnnlab/autograd/grad_mode.py": _AUTOGRAD,
    "cnnlab/autograd/gradcheck.py": _AUTOGRAD,
    "cnnlab/autograd/tensor.py": _AUTOGRAD,
    "cnnlab/tools/explain.py": ["tests/test_explain.py", "tests/test_explain_worked.py",
                                "tests/test_explain_text.py", "tests/test_explain_edges.py"],
    "cnnlab/data/idx.py": ["tests/test_data.py", "tests/test_idx_limits.py"],
    "cnnlab/data/images.py": ["tests/test_images.py", "tests/test_cli_inputs.py",
                              "tests/test_data.py"],
    "cnnlab/data/download.py": ["tests/test_download.py", "tests/test_idx_limits.py"],
    "cnnlab/data/datasets.py": ["tests/test_data.py", "tests/test_download.py",
                                "tests/test_idx_limits.py", "tests/test_display.py"],
    "cnnlab/data/loader.py": _DATA,
    "cnnlab/data/transforms.py": _DATA,
    "cnnlab/data/affine.py": _DATA,
    "cnnlab/data/split.py": _DATA,
    "cnnlab/data/folder.py": ["tests/test_images.py", "tests/test_data.py"],
    "cnnlab/explorer/app.py": _EXPLORER,
    "cnnlab/explorer/security.py": _EXPLORER,
    "cnnlab/explorer/errors.py": _EXPLORER,
    "cnnlab/explorer/network.py": _EXPLORER,
    "cnnlab/explorer/playground.py": _EXPLORER,
    "cnnlab/explorer/filterlab.py": _EXPLORER,
    "cnnlab/train/checkpoint.py": ["tests/test_checkpoint.py"],
    "cnnlab/threads.py": ["tests/test_kernels.py"],
}

# test file -> seconds added to mutmut's timeout_constant for it: its fixtures' setup, which
# mutmut does not count in a test's time. test_explorer_api.py builds a checkpoint and an app
# (~5 s on an idle machine, twice that under load) before its first test.
TIMEOUT_CONSTANT: dict[str, float] = {"tests/test_explorer_api.py": 10.0}

_KILLED = {"killed", "hang", "segfault", "caught by type check"}
_TIMEOUT = {"timeout"}                       # unverified: neither killed nor survived
_SURVIVED = {"survived", "no tests"}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python tools/mutate.py",
        description="Mutation-test one module of cnnlab with that module's own tests.")
    parser.add_argument("module", help="the source file, e.g. cnnlab/ops/pool.py")
    parser.add_argument("--tests", nargs="+", metavar="FILE",
                        help="the test files to run (default: the module's, from TESTS)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="test a random sample of N mutants instead of all of them")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--list", action="store_true",
                        help="only generate the mutants and print how many there are")
    parser.add_argument("--timeout-multiplier", type=float, metavar="X",
                        help="mutmut's timeout_multiplier for this run (default: pyproject.toml's)")
    parser.add_argument("--timeout-constant", type=float, metavar="S",
                        help="mutmut's timeout_constant in seconds (default: pyproject.toml's, "
                             "1, plus TIMEOUT_CONSTANT's entry for the test files)")
    parser.add_argument("--recheck-timeouts", action="store_true",
                        help="re-run the mutants that timed out without mutmut's limit (after "
                             "this run; with --again: those of the last run of this module)")
    parser.add_argument("--again", action="store_true",
                        help="after adding tests: re-test the survivors of the last run of this "
                             "module against the test files added or changed since (the source "
                             "unchanged)")
    args = parser.parse_args(argv)
    module = Path(args.module).resolve()
    try:
        args.module = module.relative_to(ROOT).as_posix()
    except ValueError:
        parser.error(f"module: expected a file inside {ROOT}, received {args.module!r}.")
    if not module.is_file() or module.suffix != ".py":
        parser.error(f"module: expected a Python source file, received {args.module!r}.")
    args.tests = args.tests or TESTS.get(args.module)
    if not args.tests:
        parser.error(f"no test files known for {args.module}: pass them with --tests.")
    args.tests = [t for t in args.tests if (ROOT / t).is_file()]
    if not args.tests:
        parser.error(f"none of the test files for {args.module} exist.")
    if args.sample is not None and args.sample < 1:
        parser.error(f"--sample: expected a positive count, received {args.sample}.")
    if args.jobs < 1:
        parser.error(f"--jobs: expected a positive count, received {args.jobs}.")
    for name in ("timeout_multiplier", "timeout_constant"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name.replace('_', '-')}: expected a positive number, "
                         f"received {value}.")
    return args


def _settings(args: argparse.Namespace) -> dict[str, object]:
    """The project's [tool.mutmut] table, restricted to the module and its tests."""
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    settings = dict(tomllib.loads(text).get("tool", {}).get("mutmut", {}))
    settings["only_mutate"] = [args.module]
    settings["pytest_add_cli_args_test_selection"] = list(args.tests)
    if args.timeout_multiplier is not None:
        settings["timeout_multiplier"] = args.timeout_multiplier
    settings.setdefault("timeout_multiplier", 15.0)          # mutmut's own defaults
    if args.timeout_constant is not None:
        settings["timeout_constant"] = args.timeout_constant
    else:
        settings["timeout_constant"] = float(settings.get("timeout_constant", 1.0)) + max(
            (TIMEOUT_CONSTANT.get(t, 0.0) for t in args.tests), default=0.0)
    return settings


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


# mutmut runs each mutant in a child forked from the process that ran the clean tests. A thread
# pool does not survive a fork (its threads stay in the parent), and cnnlab.ops.parallel keeps
# its pool in a module global: in the child, run_blocks hands blocks to the dead pool and waits
# for them forever, so every mutant whose tests reach it "timed out" (the explorer's, the
# convolutions'). The work copy's tests/conftest.py forgets the pool in each forked child.
_AT_FORK = """

# Added by tools/mutate.py (work copy only): forget cnnlab's thread pool in a forked child.
def _mutate_forget_thread_pool():
    import sys
    parallel = sys.modules.get("cnnlab.ops.parallel")
    if parallel is not None:
        parallel._pool = None


__import__("os").register_at_fork(after_in_child=_mutate_forget_thread_pool)
"""


def _prepare(args: argparse.Namespace) -> Path:
    """A fresh copy of the package and tests, with a pyproject restricted to this module."""
    work = WORK / args.module.replace("/", "_").removesuffix(".py")
    shutil.rmtree(work, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "cnnlab", work / "cnnlab", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    with open(work / "tests" / "conftest.py", "a", encoding="utf-8") as conftest:
        conftest.write(_AT_FORK)
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    settings = _settings(args)
    # The project's own [tool.mutmut] table is replaced by the restricted one.
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    text += "\n[tool.mutmut]\n" + "".join(f"{k} = {_toml_value(v)}\n"
                                          for k, v in settings.items())
    (work / "pyproject.toml").write_text(text, "utf-8")
    return work


_GENERATE = """
from mutmut.__main__ import create_mutants
from mutmut.mutation.trampoline import set_mutant_under_test
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths
set_mutant_under_test("mutant_generation")
copy_src_dir(); copy_also_copy_files(); setup_source_paths(); create_mutants({jobs})
"""


def _meta(work: Path, module: str) -> dict[str, int | None]:
    return json.loads((work / "mutants" / f"{module}.meta").read_text("utf-8"))[
        "exit_code_by_key"]


def _location(module: str, name: str, diff: str) -> int | None:
    """The line of the module that the mutant changes (mutmut's diff counts from the def)."""
    function = name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
    parts = [p for p in function.removeprefix("x").split("ǁ") if p] if "ǁ" in function \
        else [function.removeprefix("x_")]
    tree = ast.parse((ROOT / module).read_text("utf-8"))
    scope: list[ast.stmt] = tree.body
    node = None
    for part in parts:
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                         ast.ClassDef)) and n.name == part), None)
        if node is None:
            return None
        scope = node.body
    hunk = re.search(r"^@@ -(\d+)", diff, re.M)
    if node is None or hunk is None:
        return None
    first = node.lineno
    line = int(hunk.group(1))
    for text in diff[hunk.end():].split("\n")[1:]:
        if text.startswith("-"):
            return first + line - 1
        if text.startswith(" "):
            line += 1
    return None


def _pytest(work: Path, tests: list[str], timeout: float) -> str:
    """Run the test files on the work copy as it stands: killed, survived or hang."""
    settings = tomllib.loads((work / "pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               *settings.get("pytest_add_cli_args", []), *tests]
    try:
        run = subprocess.run(command, cwd=work, capture_output=True, timeout=timeout,
                             env={**os.environ, "PYTHONPATH": str(work)})
    except subprocess.TimeoutExpired:
        return "hang"
    return "killed" if run.returncode != 0 else "survived"


def _with_mutant(work: Path, module: str, name: str, tests: list[str], timeout: float) -> str:
    """Apply one mutant to the work copy's source, run the tests, restore the source."""
    source = (work / module).read_text("utf-8")
    subprocess.run([sys.executable, "-m", "mutmut", "apply", name], cwd=work, check=True,
                   capture_output=True)
    try:
        return _pytest(work, tests, timeout)
    finally:
        (work / module).write_text(source, "utf-8")


def _recheck(args: argparse.Namespace, work: Path, tests: list[str],
             status: dict[str, str]) -> None:
    """Re-run each mutant that timed out under mutmut's limit, without that limit."""
    names = [n for n, v in status.items() if v in _TIMEOUT]
    if not names:
        return
    import time

    start = time.monotonic()
    if _pytest(work, tests, 3600) != "survived":
        print("--recheck-timeouts: the test files fail on the unmutated copy; time-outs left "
              "as they are.", file=sys.stderr)
        return
    clean = time.monotonic() - start
    limit = 10 * clean + 60
    print(f"re-checking {len(names)} time-outs without mutmut's limit (a clean run takes "
          f"{clean:.0f} s; limit {limit:.0f} s each)", flush=True)
    for name in names:
        status[name] = _with_mutant(work, args.module, name, tests, limit)
        print(f"    {name}: {status[name]}", flush=True)


def _digest(test: str, root: Path = ROOT) -> str:
    import hashlib

    return hashlib.sha256((root / test).read_bytes()).hexdigest()


def _again(args: argparse.Namespace) -> int:
    """Re-test the last run's survivors against the test files added or changed since.

    Adding tests cannot revive a killed mutant, so only the survivors need running, and only
    against the new or changed files (changed: their SHA-256 differs from the last run's):
    each survivor is applied to the work copy's source in turn (``mutmut apply``) and those
    files run against it, stopping at the first failure. With ``--recheck-timeouts``, the
    last run's time-outs are re-run first (with every test file).
    """
    work = WORK / args.module.replace("/", "_").removesuffix(".py")
    try:
        last = json.loads((work / "run.json").read_text("utf-8"))
    except FileNotFoundError:
        print(f"--again: no earlier run of {args.module} in {work}; run it without --again.",
              file=sys.stderr)
        return 2
    digests = last.setdefault("digests", {})
    new = [t for t in args.tests
           if t not in last["tests"] or digests.get(t, _digest(t)) != _digest(t)]
    if not new and not args.recheck_timeouts:
        print(f"--again: no test files added or changed since the last run "
              f"({' '.join(last['tests'])}).",
              file=sys.stderr)
        return 2
    for test in new:
        shutil.copy2(ROOT / test, work / test)
    tested = {t: _digest(t, work) for t in new}       # the files as copied, not as edited later
    status = last["status"]
    if args.recheck_timeouts:
        _recheck(args, work, list(dict.fromkeys(last["tests"] + new)), status)
    if new:
        print(f"re-testing the {sum(v in _SURVIVED for v in status.values())} survivors of "
              f"{len(status)} mutants of {args.module} against {' '.join(new)}", flush=True)
        for name, value in status.items():
            if value in _SURVIVED and _with_mutant(work, args.module, name, new, 600) != "survived":
                status[name] = "killed"
    last["tests"] += [t for t in new if t not in last["tests"]]
    digests.update(tested)
    args.seed = last.get("seed", args.seed)
    (work / "run.json").write_text(json.dumps(last, indent=1), "utf-8")
    return _report(args, work, last["names"], list(status), status)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.again:
        return _again(args)
    work = _prepare(args)
    # The test files as copied: one edited while mutmut runs counts as changed for --again.
    digests = {t: _digest(t, work) for t in args.tests}
    mutmut = [sys.executable, "-m", "mutmut"]
    limits = tomllib.loads((work / "pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]
    print(f"mutating {args.module}; tests: {' '.join(args.tests)}; work dir "
          f"{work.relative_to(ROOT)}; time limit per mutant (T + {limits['timeout_constant']:g} s)"
          f" × {limits['timeout_multiplier']:g} wall, twice that in CPU time", flush=True)
    subprocess.run([sys.executable, "-c", _GENERATE.format(jobs=args.jobs)], cwd=work,
                   check=True, stdout=subprocess.DEVNULL)
    names = sorted(_meta(work, args.module), key=lambda n: (n.rsplit("_", 1)[0],
                                                             int(n.rsplit("_", 1)[1])))
    chosen = names
    if args.sample is not None and args.sample < len(names):
        chosen = sorted(random.Random(args.seed).sample(names, args.sample),
                        key=names.index)
    print(f"{len(names)} mutants; testing {len(chosen)}"
          + (f" (random sample, seed {args.seed})" if chosen is not names else ""), flush=True)
    if args.list:
        return 0
    run = subprocess.run([*mutmut, "run", "--max-children", str(args.jobs), *chosen],
                         cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = _meta(work, args.module)
    from mutmut.stats import status_by_exit_code
    status = {name: status_by_exit_code[results.get(name)] for name in chosen}
    if not any(value in _KILLED | _TIMEOUT | _SURVIVED for value in status.values()):
        print(run.stdout[-3000:])
        print(f"mutmut checked no mutant (exit status {run.returncode}); its output is above.")
        return 1
    if args.recheck_timeouts:
        _recheck(args, work, args.tests, status)
    (work / "run.json").write_text(json.dumps({"tests": args.tests, "names": names,
                                               "seed": args.seed, "status": status,
                                               "digests": digests},
                                              indent=1),
                                   "utf-8")
    return _report(args, work, names, chosen, status)


def _report(args: argparse.Namespace, work: Path, names: list[str], chosen: list[str],
            status: dict[str, str]) -> int:
    mutmut = [sys.executable, "-m", "mutmut"]
    counts: dict[str, int] = {}
    for value in status.values():
        counts[value] = counts.get(value, 0) + 1
    killed = sum(n for s, n in counts.items() if s in _KILLED)
    survived = sum(n for s, n in counts.items() if s in _SURVIVED)
    timeouts = sum(n for s, n in counts.items() if s in _TIMEOUT)
    for name in (n for n in chosen if status[n] in _SURVIVED | _TIMEOUT):
        shown = subprocess.run([*mutmut, "show", name], cwd=work, capture_output=True,
                               text=True).stdout
        diff = shown.split("\n", 1)[1] if "\n" in shown else shown
        line = _location(args.module, name, diff)
        changed = [t for t in diff.split("\n") if t[:1] in "+-" and t[:3] not in ("---", "+++")]
        label = "TIMEOUT (unverified)" if status[name] in _TIMEOUT else f"SURVIVED ({status[name]})"
        print(f"\n{label} {args.module}:{line or '?'}  {name}")
        print("\n".join("    " + t for t in changed))
    sample = (f", sample of {len(chosen)} of {len(names)} (seed {args.seed})"
              if len(chosen) < len(names) else "")
    details = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
    if killed + survived:
        print(f"\n{args.module}: {killed} of {killed + survived} mutants killed "
              f"({100 * killed / (killed + survived):.0f}%){sample}; {details}")
    else:
        print(f"\n{args.module}: no mutant killed or survived{sample}; {details}")
    if timeouts:
        total = killed + survived + timeouts
        print(f"{timeouts} time-outs left out above (mutmut counts them as killed, but no test "
              f"was seen to fail): with them the score lies between {100 * killed / total:.0f}% "
              f"and {100 * (killed + timeouts) / total:.0f}%. Re-run them: python "
              f"tools/mutate.py {args.module} --again --recheck-timeouts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
