"""A randomly initialised CAM++ speaker-embedding checkpoint in funasr's on-disk format.

No model hub is reachable where this service is built and tested, so tests load this
directory through the same `AutoModel` path the published
`iic/speech_campplus_sv_zh-cn_16k-common` takes: `config.yaml`, `configuration.json` and
`model.pt` (a plain state_dict of funasr's CAMPPlus, 6.85M parameters, the real size).
Random weights carry no speaker information: without a speaker count every segment is one
speaker; with `num_speakers=2` the clustering still splits them in two.

Usage: `python -m sensevoice_server.testing.campplus [--seed N] OUTDIR`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CONFIG_YAML = "model: CAMPPlus\nmodel_conf:\n  feat_dim: 80\n  embedding_size: 192\n"
CONFIGURATION = {
    "framework": "pytorch",
    "task": "speaker-verification",
    "model_name_in_hub": {"ms": "iic/speech_campplus_sv_zh-cn_16k-common", "hf": ""},
    "file_path_metas": {"init_param": "model.pt", "config": "config.yaml"},
}


def build_campplus(outdir: Path, seed: int = 0) -> Path:
    """Write the directory (the same seed gives the same bytes) and return it."""
    import torch
    from funasr.models.campplus.model import CAMPPlus

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "config.yaml").write_text(CONFIG_YAML, encoding="utf-8")
    (outdir / "configuration.json").write_text(json.dumps(CONFIGURATION, indent=2) + "\n")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)  # CAMPPlus draws its initial weights from the global generator
        model = CAMPPlus(feat_dim=80, embedding_size=192).eval()
    finally:
        torch.random.set_rng_state(state)
    torch.save(model.state_dict(), outdir / "model.pt")
    return outdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args()
    print(build_campplus(args.outdir, args.seed))


if __name__ == "__main__":
    main()
