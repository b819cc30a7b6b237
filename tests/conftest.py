"""Settings for every test: hypothesis without per-example deadlines.

The machine is shared by several engineers (2 cores): an example that takes 70 ms alone took
600 ms under their load and failed a property test on timing alone. The properties are about
results; a test that must be fast says so itself.
"""

from hypothesis import settings

settings.register_profile("emc", deadline=None)
settings.load_profile("emc")
