"""The package list, computed: fixtures/ is the package `postdeploy` and every folder below it a
sub-package (code, or data of the reference deployment and the report's templates);
verifications/ is `postdeploy.verifications`. The rest of the build is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        "postdeploy",
        *(f"postdeploy.{name}" for name in find_namespace_packages("fixtures", exclude=["*__pycache__*"])),
        "postdeploy.verifications",
    ],
)
