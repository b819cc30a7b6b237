"""Settings for every test: hypothesis without per-example deadlines.

The machine is shared by several engineers (2 cores): an example that takes 70 ms alone took
600 ms under their load and failed a property test on timing alone. The properties are about
results; a test that must be fast says so itself.
"""

from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("emc", deadline=None)
settings.load_profile("emc")


# With pytest-xdist (`python3 dev.py test` runs `-n 2 --dist loadfile`): each module runs on one
# xdist worker (module fixtures such as the monitoring stack start once), and the modules that
# stream thousands of events through workers count as one file, so that two of them never compete
# for the machine's two cores at the same time; their waits are sized for one at a time. (xdist's
# own `loadgroup` marks do not reach its scheduler under pytest 9: the node ids it rewrites stay.)
STREAMING_MODULES = frozenset({"test_crash", "test_chaos", "test_poison", "test_calibration_2024", "test_calibration_2025"})


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist; without it, never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class StreamingModulesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "streaming modules" if Path(path).stem in STREAMING_MODULES else path

    return StreamingModulesTogether(config, log)
