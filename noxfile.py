"""The declared dependency ranges, tried: the newest releases and the lowest declared ones.

    nox -s latest          # what `pip install -e ".[cpu,test]"` resolves to today
    nox -s lowest          # tensorflow-cpu, numpy, TFDS at the floors declared in setup.cfg
    nox -s lowest -- -m "not slow" -x    # arguments after -- go to pytest

Only Python 3.11 is available where this project is developed, so both sessions use it.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["latest", "lowest"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"
# The floors of setup.cfg's install_requires and cpu extra. Tried and failed at import (TFDS's
# tensorflow-metadata needs a newer protobuf than these TensorFlows allow): 2.16.1, 2.18.1.
LOWEST = ("tensorflow-cpu==2.21.0", "tensorflow-datasets==4.9.10", "numpy==2.4.0")
FAST_TIER = ("-q", "-m", "not slow")


@nox.session(python=PYTHON)
def latest(session: nox.Session) -> None:
    """The fast tier with the newest releases the declared ranges allow."""
    session.install("-e", ".[cpu,test]")
    session.run("python", "-m", "pytest", *(session.posargs or FAST_TIER))


@nox.session(python=PYTHON)
def lowest(session: nox.Session) -> None:
    """The fast tier with TensorFlow, TFDS and numpy at their lowest declared versions."""
    session.install("-e", ".[cpu,test]", *LOWEST)
    session.run("python", "-c", "import numpy, tensorflow, tensorflow_datasets as tfds; "
                "print('tensorflow', tensorflow.__version__, 'tfds', tfds.__version__, "
                "'numpy', numpy.__version__)")
    session.run("python", "-m", "pytest", *(session.posargs or FAST_TIER))
