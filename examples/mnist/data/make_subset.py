"""Write the small MNIST subset that ships with the repository.

Fresh clones have no access to the full data set, so tests and examples use the
first ``--train-count`` training and first ``--test-count`` test examples, stored
in the same gzipped IDX layout as the SageMaker sample-data channels.

Usage::

    python examples/mnist/data/make_subset.py [--source DIR] [--dest DIR]
"""

import argparse
import gzip
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_SOURCE = os.path.join(REPO_ROOT, "..", "shared", "data", "mnist")

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def read_idx(path):
    """Return (magic, dims, payload bytes) of a gzipped IDX file."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = list(struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim]))
    return magic, dims, raw[4 + 4 * ndim :]


def write_idx(path, magic, dims, payload):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims)
    # mtime=0 and no embedded file name keep the output byte-identical between runs,
    # so regenerating the subset does not show up as a change in git.
    with (
        open(path, "wb") as raw_out,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, mtime=0) as f,
    ):
        f.write(header + payload)


def take_first(src, dst, count, expected_magic):
    magic, dims, payload = read_idx(src)
    if magic != expected_magic:
        raise ValueError(f"{src}: IDX magic {magic} (expected {expected_magic})")
    if dims[0] < count:
        raise ValueError(f"{src}: has {dims[0]} examples, {count} requested")
    item_size = 1
    for d in dims[1:]:
        item_size *= d
    if len(payload) != dims[0] * item_size:
        raise ValueError(f"{src}: payload size does not match its header")
    write_idx(dst, magic, [count] + dims[1:], payload[: count * item_size])


def make_subset(source, dest, train_count, test_count):
    for channel, count in (("train", train_count), ("test", test_count)):
        out_dir = os.path.join(dest, channel)
        os.makedirs(out_dir, exist_ok=True)
        for name, magic in (("images.gz", IMAGES_MAGIC), ("labels.gz", LABELS_MAGIC)):
            src = os.path.join(source, channel, name)
            take_first(src, os.path.join(out_dir, name), count, magic)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help="full MNIST, with train/ and test/ channels",
    )
    parser.add_argument(
        "--dest", default=HERE, help="where train/ and test/ are written"
    )
    parser.add_argument("--train-count", type=int, default=6000)
    parser.add_argument("--test-count", type=int, default=1000)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.source):
        parser.error(f"full MNIST not found at {args.source} (use --source)")
    make_subset(args.source, args.dest, args.train_count, args.test_count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
