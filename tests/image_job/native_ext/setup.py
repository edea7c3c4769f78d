# A C extension that requirements.txt names: it installs only where the image can compile it.
from setuptools import Extension, setup

setup(name="native-ext", version="1.0", ext_modules=[Extension("native_ext", ["native_ext.c"])])
