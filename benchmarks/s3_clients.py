"""``python -m benchmarks.s3_clients``: the download child's time with each S3 client considered.

The start-up row with code from S3 is mostly the download child making its S3 client. This
times, from spawn to exit, one download of the same object from the same local S3 endpoint
(moto's server) by: the child with botocore's own session, the child with ``s3_model``'s session
(services looked up instead of listed) with botocore's whole S3 model and with the cut one, and
awscrt's S3 client (a bare GET to a file, for the record: adopting it would
mean reading S3's error codes and following its region redirects by hand, which botocore does
today). Runs alternate between the variants; each cell is the median with its min-max.

It makes ``benchmarks/.s3-study-venv`` (git-ignored) with botocore (this venv's version),
retrying and awscrt from PyPI on first use.
"""

import argparse
import os
import subprocess
import sys
import tempfile

from benchmarks import measure
from benchmarks.report import Row, table
from benchmarks.s3_endpoint import Endpoint

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STUDY_VENV = os.path.join(HERE, ".s3-study-venv")
# The child as train runs it, with the cut model looked for where the given directory says, or
# ("botocore") with botocore's own session.
_CHILD = """
import os, sys
import botocore.session
from sagemaker_mxnet_container import s3, s3_model
s3_model.DATA_DIR = sys.argv.pop(1)
if s3_model.DATA_DIR == "botocore":
    s3_model.session = botocore.session.get_session
os._exit(s3.main(sys.argv[1:]))
"""
_AWSCRT = """
import os, sys
from awscrt.auth import AwsCredentialsProvider
from awscrt.http import HttpHeaders, HttpRequest
from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
from awscrt.s3 import S3Client, S3RequestTlsMode, S3RequestType

endpoint, bucket, key, destination, region = sys.argv[1:]
loop = EventLoopGroup(1)
bootstrap = ClientBootstrap(loop, DefaultHostResolver(loop))
client = S3Client(
    bootstrap=bootstrap,
    region=region,
    credential_provider=AwsCredentialsProvider.new_default_chain(bootstrap),
    tls_mode=S3RequestTlsMode.DISABLED,
)
status = {}
request = HttpRequest("GET", f"/{bucket}/{key}", HttpHeaders([("Host", endpoint.split("://", 1)[1])]))
done = client.make_request(
    type=S3RequestType.GET_OBJECT,
    request=request,
    recv_filepath=destination,
    on_headers=lambda status_code, headers, **_: status.setdefault("code", status_code),
)
done.finished_future.result(60)
os._exit(0 if status.get("code") == 200 else 1)
"""


def study_python(log) -> str:
    python = os.path.join(STUDY_VENV, "bin", "python")
    if not os.path.exists(python):
        import botocore

        log(f"Creating {STUDY_VENV} (botocore {botocore.__version__}, retrying, awscrt)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", STUDY_VENV], check=True)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             f"botocore=={botocore.__version__}", "retrying", "awscrt"],
            check=True,
        )  # fmt: skip
    return python


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.s3_clients", description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=20)
    args = parser.parse_args(argv)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    python = study_python(log)
    with tempfile.TemporaryDirectory(prefix="s3-clients-") as workdir, Endpoint() as s3:
        uri = s3.put("s3-clients", "job/source/sourcedir.tar.gz", os.urandom(20_000))
        destination = os.path.join(workdir, "sourcedir.tar.gz")
        cut = os.path.join(workdir, "cut-model")
        subprocess.run([python, "-c", f"from sagemaker_mxnet_container import s3_model; s3_model.write({cut!r})"],
                       check=True, env={**os.environ, "PYTHONPATH": REPO})  # fmt: skip
        child = [python, "-c", _CHILD]
        variants = {
            "download child, botocore's own session": [*child, "botocore", uri, destination, "us-east-1"],
            "download child, services looked up, whole S3 model": [*child, os.path.join(workdir, "none"), uri,
                                                                   destination, "us-east-1"],
            "download child, services looked up, cut S3 model": [*child, cut, uri, destination, "us-east-1"],
            "awscrt's S3 client, a bare GET": [python, "-c", _AWSCRT, s3.url, "s3-clients",
                                               "job/source/sourcedir.tar.gz", destination, "us-east-1"],
            "floor: python -c pass": [python, "-c", "pass"],
        }  # fmt: skip
        environ = {**os.environ, **s3.environ(), "PYTHONPATH": REPO}
        times = {name: [] for name in variants}
        for repetition in range(args.repetitions + 1):
            order = list(variants) if repetition % 2 == 0 else list(reversed(variants))
            for name in order:
                run = measure.run(variants[name], env=environ, cwd=workdir)
                if run.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{run.output[-3000:]}")
                if repetition:  # the first round warms the page cache and byte-compiles
                    times[name].append(run.whole)
    rows = [Row(name, "ms", values, scale=1000) for name, values in times.items()]
    print(table("The download child's S3 client: spawn to exit", rows, "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
