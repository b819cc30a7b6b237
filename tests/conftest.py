"""Settings for every test: hypothesis without per-example deadlines.

The machine is shared by several engineers (2 cores): an example that takes 70 ms alone took
600 ms under their load and failed a property test on timing alone. The properties are about
results; a test that must be fast says so itself.
"""

import pytest
from hypothesis import settings

settings.register_profile("emc", deadline=None)
settings.load_profile("emc")


# With pytest-xdist (`python3 dev.py test` runs `-n 2 --dist loadgroup`): tests of one module stay
# on one xdist worker (module fixtures such as the monitoring stack start once), and the modules
# that stream thousands of events through workers share one group, so that two of them never
# compete for the machine's two cores at the same time; their waits are sized for one at a time.
STREAMING_MODULES = frozenset({"test_crash", "test_chaos", "test_poison", "test_calibration_2024", "test_calibration_2025"})


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks (its own hook of the same name)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.path.stem
            item.add_marker(pytest.mark.xdist_group("streaming" if module in STREAMING_MODULES else str(item.path)))
