"""Load a preset from the Hugging Face Hub, pinned to a revision, then again offline.

    python examples/load_preset_from_hub.py hf://my-lab/unet3d_multitask_hecktor_petct_fold1@<commit>
    python examples/load_preset_from_hub.py --tiny

``--tiny`` serves a tiny preset from hnprog's loopback Hub (a local HTTP server that speaks
the Hub's download protocol), so the example runs without the internet: the first load
downloads into a Hugging Face cache and checks every file's sha256; the second load, with the
server stopped, comes from the cache.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from hnprog import from_preset


def show(preset, label: str) -> None:
    spec = preset.preprocessing
    size = spec["crop_size"]
    out = preset.predict(np.zeros((1, size, size, size, 2), "float32"))
    print(f"{label}: {preset.name}, {spec['spacing']} mm, {size}^3 -> "
          + ", ".join(f"{k} {v.shape}" for k, v in out.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", nargs="?", help="hf://org/repo@revision")
    parser.add_argument("--out", type=Path, default=None,
                        help="work folder of --tiny (default: a temporary folder)")
    parser.add_argument("--tiny", action="store_true", help="loopback Hub, tiny preset")
    args = parser.parse_args()

    if not args.tiny:
        if args.uri is None:
            parser.error("give an hf:// URI (or --tiny)")
        show(from_preset(args.uri), "downloaded")
        show(from_preset(args.uri, local_files_only=True), "from the cache")
        return

    from _tiny import tiny_preset

    from hnprog.testing.loopback_hub import LoopbackHub

    work = args.out or Path(tempfile.mkdtemp(prefix="hnprog-hub-example-"))
    folder = tiny_preset(work / "tiny-preset")
    with LoopbackHub() as hub:
        commit = hub.add_folder("my-lab/tiny-multitask", folder, tags=("v1",))
        uri = f"hf://my-lab/tiny-multitask@{commit}"
        show(from_preset(uri, endpoint=hub.endpoint, cache_dir=work / "cache"), "downloaded")
    show(from_preset(uri, cache_dir=work / "cache", local_files_only=True), "offline, cached")


if __name__ == "__main__":
    main()
