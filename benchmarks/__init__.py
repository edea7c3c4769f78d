"""Benchmarks of this toolkit against the peer (sagemaker-training 5.x under the public MXNet
training toolkit): ``python -m benchmarks`` prints the table; see docs/performance.md."""
