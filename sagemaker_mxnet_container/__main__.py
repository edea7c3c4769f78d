import sys

from sagemaker_mxnet_container.entrypoint import main

sys.exit(main())
