from sagemaker_mxnet_container.entrypoint import run

run()
