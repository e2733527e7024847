"""Peak memory while loading GPT-2 124M from a Hugging Face folder: minigpt against the naive way.

usage: python benchmarks/pretrained_memory.py [--folder DIR]

Without --folder, a full-size GPT-2 124M with random weights is made locally (with transformers when
it is installed, otherwise with minigpt's own save_pretrained) in a temporary folder: nothing is
downloaded. Each loader runs in its own process; the peak resident memory (VmHWM, reset after the
imports) minus the resident memory after the imports is what loading cost, printed in MB and in
copies of the weights (498 MB of float32 for 124M):

  minigpt            GPT.from_pretrained: each tensor is read straight into the model's parameters
  naive              minigpt.safetensors.load_file (the whole file) + GPT(config) + copy
  transformers       GPT2LMHeadModel.from_pretrained, for reference (when installed)

A minigpt GPT holds its gradients beside its parameters from the start (zero-filled, so resident):
that is one copy of the weights before any loading. minigpt's loader adds nothing on top; the
naive one adds the whole file. Measured here (2026-11-26, 2 cores): minigpt 2.2 copies at the peak
(parameters + gradients + allocator slack from the random initialisation), naive 3.2.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

LOADERS = {
    "minigpt": "from minigpt import GPT\nmodel = GPT.from_pretrained(FOLDER)",
    "naive": ("from minigpt import GPT\nfrom minigpt.pretrained import hf_gpt2\n"
              "from minigpt.safetensors import load_file\nimport json\n"
              "tensors = load_file(FOLDER + '/model.safetensors')\n"
              "cfg = hf_gpt2.config_from_hf(json.load(open(FOLDER + '/config.json')), FOLDER)\n"
              "model = GPT(cfg)\n"
              "for name, p in model.params.items():\n    p[...] = tensors['transformer.' + name]"),
    # transformers may map the file and read it lazily: summing every parameter makes it really load
    "transformers": ("from transformers import GPT2LMHeadModel\nmodel = GPT2LMHeadModel.from_pretrained(FOLDER)\n"
                     "total = sum(float(p.sum()) for p in model.parameters())"),
}
IMPORTS = {"minigpt": "import minigpt.pretrained", "naive": "import minigpt.pretrained",
           "transformers": "import transformers, transformers.models.gpt2.modeling_gpt2"}

CHILD = """
import json, sys
FOLDER = sys.argv[1]
{imports}
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
before = status('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')  # resets the peak (VmHWM) to the current size
{load}
print(json.dumps({{"before": before, "peak": status('VmHWM:'), "after": status('VmRSS:')}}))
"""


def make_folder(path):
    try:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        from minigpt import GPT, GPTConfig
        GPT(GPTConfig.preset("gpt2")).save_pretrained(path)
        return "minigpt"
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(path)
    return "transformers"


def measure(name, folder):
    code = CHILD.format(imports=IMPORTS[name], load=LOADERS[name])
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True)
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1]
    return json.loads(result.stdout.strip().splitlines()[-1]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", help="an existing GPT-2 folder (default: make a random 124M one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp) / "gpt2-124M-random"
        if not args.folder:
            print(f"made a random GPT-2 124M folder with {make_folder(folder)}")
        weights = (folder / "model.safetensors").stat().st_size
        print(f"weights: {weights / 1e6:.0f} MB ({folder / 'model.safetensors'})")
        print(f"{'loader':<13} {'peak - before':>14} {'copies':>7} {'held after':>11}")
        for name in LOADERS:
            r, error = measure(name, folder)
            if r is None:
                print(f"{name:<13} skipped: {error}")
                continue
            extra, held = r["peak"] - r["before"], r["after"] - r["before"]
            print(f"{name:<13} {extra / 1e6:>11.0f} MB {extra / weights:>7.2f} {held / 1e6:>8.0f} MB")


if __name__ == "__main__":
    main()
