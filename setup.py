"""tensorboard-archviz: a TensorBoard plugin that shows what a deep-learning model is.

`pip install .` (and `pip install -e .`) builds the dashboard from frontend/ with npm into
tensorboard_archviz/static/, which ships in the wheel. Set ARCHVIZ_SKIP_FRONTEND_BUILD=1 to
reuse an existing build (e.g. when installing from an sdist without Node).
"""

import os
import shutil
import subprocess

import setuptools
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = os.path.dirname(os.path.abspath(__file__))
FRONTEND = os.path.join(HERE, "frontend")
STATIC = os.path.join(HERE, "tensorboard_archviz", "static")


def build_frontend():
    """npm ci (when needed) + npm run build: frontend/src -> tensorboard_archviz/static/."""
    if os.environ.get("ARCHVIZ_SKIP_FRONTEND_BUILD") and os.path.exists(
            os.path.join(STATIC, "index.js")):
        return
    if not os.path.isdir(FRONTEND):
        if os.path.exists(os.path.join(STATIC, "index.js")):
            return  # an sdist/wheel that already carries the build
        raise RuntimeError("frontend/ is missing and no built dashboard exists")
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to build the Arch Viz dashboard (Node >= 18)")
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


cmdclass = {"build_py": BuildPyWithFrontend, "develop": DevelopWithFrontend}
try:  # PEP 660 editable installs (pip install -e .)
    from setuptools.command.editable_wheel import editable_wheel

    class EditableWheelWithFrontend(editable_wheel):
        def run(self):
            build_frontend()
            super().run()

    cmdclass["editable_wheel"] = EditableWheelWithFrontend
except ImportError:  # pragma: no cover - old setuptools
    pass


setuptools.setup(
    name="tensorboard-archviz",
    version="0.1.0",
    description="TensorBoard plugin: model architectures, shapes, params and conv filters for "
                "Keras and PyTorch",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read()
    if os.path.exists(os.path.join(HERE, "README.md")) else "",
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["tensorboard_archviz", "tensorboard_archviz.*"]),
    package_data={"tensorboard_archviz": ["static/*", "http_api.md"]},
    python_requires=">=3.9",
    install_requires=["tensorboard>=2.16", "numpy", "pillow", "werkzeug"],
    extras_require={
        "keras": ["keras>=3.0"],
        "tensorflow": ["tensorflow>=2.16"],
        "torch": ["torch>=2.1"],
        "test": ["pytest", "pytest-timeout", "playwright", "scikit-learn", "tensorboardX",
                 "hypothesis"],
    },
    entry_points={
        "tensorboard_plugins": ["archviz = tensorboard_archviz.plugin:ArchVizPlugin"],
        "console_scripts": ["archviz = tensorboard_archviz.cli:main"],
    },
    cmdclass=cmdclass,
    zip_safe=False,
)
