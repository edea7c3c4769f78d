"""SageMaker MXNet training runtime: turns the /opt/ml contract into a finished training job."""

__version__ = "1.0.0"
