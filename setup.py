"""Build steps of tensorboard-archviz that pyproject.toml cannot declare: the dashboard.

The metadata lives in pyproject.toml. This file only makes sure the built dashboard
(tensorboard_archviz/static/, generated from frontend/ by `npm run build`) is in every build:

- from a checkout (`pip install .`, `pip install -e .`, `python -m build`): npm builds it;
  ARCHVIZ_SKIP_FRONTEND_BUILD=1 reuses an existing build;
- from an sdist (it carries the built dashboard): the shipped build is used, no Node needed.
"""

import os
import shutil
import subprocess

import setuptools
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
FRONTEND = os.path.join(HERE, "frontend")
STATIC = os.path.join(HERE, "tensorboard_archviz", "static")


def _built():
    return os.path.exists(os.path.join(STATIC, "index.js"))


def build_frontend():
    """npm ci (when needed) + npm run build: frontend/src -> tensorboard_archviz/static/."""
    from_sdist = os.path.exists(os.path.join(HERE, "PKG-INFO"))
    if _built() and (from_sdist or os.environ.get("ARCHVIZ_SKIP_FRONTEND_BUILD")):
        return  # an sdist carries the built dashboard; or the caller asked to reuse a build
    if not os.path.isdir(FRONTEND):
        if _built():
            return
        raise RuntimeError("frontend/ is missing and no built dashboard exists")
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to build the Arch Viz dashboard from a checkout "
                           "(Node >= 18); an sdist or wheel from a package index needs none")
    if not os.path.isdir(os.path.join(FRONTEND, "node_modules")):
        subprocess.check_call([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND)
    subprocess.check_call([npm, "run", "build"], cwd=FRONTEND)


class BuildPyWithFrontend(build_py):
    def run(self):
        build_frontend()
        super().run()


class DevelopWithFrontend(develop):
    def run(self):
        build_frontend()
        super().run()


class SdistWithFrontend(sdist):
    """The sdist carries the built dashboard, so installing it needs no Node."""

    def run(self):
        build_frontend()
        super().run()


cmdclass = {"build_py": BuildPyWithFrontend, "develop": DevelopWithFrontend,
            "sdist": SdistWithFrontend}
try:  # PEP 660 editable installs (pip install -e .)
    from setuptools.command.editable_wheel import editable_wheel

    class EditableWheelWithFrontend(editable_wheel):
        def run(self):
            build_frontend()
            super().run()

    cmdclass["editable_wheel"] = EditableWheelWithFrontend
except ImportError:  # pragma: no cover - old setuptools
    pass


setuptools.setup(cmdclass=cmdclass)
