"""Fixtures for the integration tests: a loopback JWKS server, token minting, and real
`wharf serve` processes (one shared per module, plus fresh ones on demand)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from lib import api  # noqa: E402
from lib.vercel import ISSUER, JwksServer, KeySet, Tokens  # noqa: E402
from lib.sandbox import start_pair  # noqa: E402
from lib.wharf import CLIENT_ID, Wharf  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _wharf_bin():
    return os.environ.get("WHARF_BIN") or os.path.join(REPO, "build", "wharf")


def pytest_sessionstart(session):
    b = _wharf_bin()
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.exit(f"WHARF_BIN={b} is not an executable; build it first (make build)", returncode=4)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def wharf_bin():
    return _wharf_bin()


@pytest.fixture(scope="module")
def keyset():
    return KeySet(1)


@pytest.fixture(scope="module")
def jwks(keyset):
    srv = JwksServer(keyset)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def tokens(keyset):
    return Tokens(keyset, CLIENT_ID, ISSUER)


@pytest.fixture(scope="module")
def wharf_env():
    """Extra environment for the module's shared wharf; modules override this fixture."""
    return {}


@pytest.fixture(scope="module")
def shared_wharf(wharf_bin, jwks, wharf_env, tmp_path_factory):
    w = Wharf(wharf_bin, tmp_path_factory.mktemp("wharf-shared"), jwks.url, ISSUER, env=wharf_env)
    w.start()
    yield w
    w.stop()


@pytest.fixture
def wharf(shared_wharf, request):
    """The module's shared wharf; restarted if an earlier test killed it, and a test during
    which it dies fails."""
    if not shared_wharf.alive():
        shared_wharf.start()
    yield shared_wharf
    if not shared_wharf.alive():
        pytest.fail(f"wharf died during this test (status {shared_wharf.proc.returncode}); "
                    f"stderr tail:\n{shared_wharf.stderr_tail()}", pytrace=False)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"--- shared wharf stderr tail ({shared_wharf.stderr_path}) ---")
        print(shared_wharf.stderr_tail(30))


@pytest.fixture
def make_wharf(wharf_bin, jwks, tmp_path, request):
    """Factory for a dedicated wharf: make_wharf(env={...}, start=True, jwks_url=..., issuer=...)."""
    made = []

    def factory(env=None, start=True, jwks_url=None, issuer=ISSUER, name=None, workdir=None):
        wd = workdir or (tmp_path / (name or f"wharf{len(made)}"))
        w = Wharf(wharf_bin, wd, jwks_url or jwks.url, issuer, env=env)
        made.append(w)
        if start:
            w.start()
        return w

    yield factory
    rep = getattr(request.node, "rep_call", None)
    for w in made:
        w.stop()
        if rep is not None and rep.failed:
            print(f"--- wharf stderr tail ({w.stderr_path}) ---")
            print(w.stderr_tail(30))


@pytest.fixture
def iid():
    return api.new_installation_id()


@pytest.fixture
def installed(wharf, tokens, iid):
    """An installation created by a successful Upsert on the shared wharf."""
    r = wharf.request("PUT", f"/v1/installations/{iid}", tokens.user(iid), json_body=api.upsert_body())
    api.assert_installation_state(r)
    return iid


@pytest.fixture(scope="module")
def pair(wharf_bin, tmp_path_factory):
    """A wharf-sandbox and a wharf wired to each other (one pair per module)."""
    sb, w = start_pair(tmp_path_factory.mktemp("pair"), wharf_bin)
    yield sb, w
    w.stop()
    sb.stop()
