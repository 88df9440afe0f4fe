"""Seed and run count of the crash-consistency suite, printed at the start and the end of
the session whatever happens (pytest's header and terminal summary), so a failing run can be
replayed with `CRASH_SEED=<seed> CRASH_RUNS=<runs> make crash-test`."""
import os
import secrets
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DEFAULT_RUNS = 60


def _settings():
    seed = os.environ.get("CRASH_SEED", "").strip()
    runs = os.environ.get("CRASH_RUNS", "").strip()
    return (int(seed) if seed else secrets.randbelow(10**9),
            int(runs) if runs else DEFAULT_RUNS)


def pytest_configure(config):
    seed, runs = _settings()
    config.crash_seed = seed
    config.crash_runs = runs
    config.crash_outcome = None


def replay_line(config):
    return (f"CRASH_SEED={config.crash_seed} CRASH_RUNS={config.crash_runs} "
            f"make crash-test   (or: CRASH_SEED={config.crash_seed} CRASH_RUNS={config.crash_runs} "
            f"/usr/bin/python3 -m pytest tests/crash)")


def pytest_report_header(config):
    return [f"crash-consistency: seed={config.crash_seed} runs={config.crash_runs}",
            f"replay: {replay_line(config)}"]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    outcome = config.crash_outcome or "not run"
    terminalreporter.write_sep("=", "crash-consistency")
    terminalreporter.write_line(f"seed={config.crash_seed} runs={config.crash_runs} ({outcome})")
    terminalreporter.write_line(f"replay: {replay_line(config)}")


@pytest.fixture(scope="session")
def crash_settings(request):
    return request.config.crash_seed, request.config.crash_runs


@pytest.fixture(scope="session")
def progress(request):
    """print() that reaches the terminal although pytest captures output."""
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def out(line):
        if capman is not None:
            with capman.global_and_fixture_disabled():
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
        else:
            sys.stderr.write(line + "\n")
    return out
