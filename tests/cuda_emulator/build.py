"""Compile minigpt._cuda for the CUDA emulator: the real csrc/cuda/ sources and bindings, with g++.

Two rewrites make a .cu file plain C++ for include/cuda_runtime.h; nothing else in the source changes:
  kernel<<<grid, block, smem, stream>>>(args);
      -> ::emu::launch(kernel, grid, block, smem, stream, [&] { kernel(args); });
  extern __shared__ __align__(16) float smem[];
      -> float* smem = ::emu::dynamic_shared<float>();
MINIGPT_CUDA_EMULATOR is defined, so csrc/cuda/ptx.cuh takes its PTX wrappers (cp.async, mma) from
include/ptx_emulated.h instead of inline assembly. The module is cached by a hash of its sources, so a
second run of the tests starts at once.
With memcheck=True it is built with AddressSanitizer instead of optimised: every kernel read or write
past the end of an array (the arrays are NumPy's, each in its own heap block) stops the run with a
report naming the kernel's line, as compute-sanitizer's memcheck does on a GPU.
Either way, every access is checked for alignment (UndefinedBehaviorSanitizer's alignment check): a float4
or float2 read or written at an address that is not a multiple of its size stops the run naming the line,
where a GPU would stop the kernel with "misaligned address".
"""
import fcntl
import hashlib
import pathlib
import re
import subprocess
import sys
import sysconfig

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CUDA_SRC = ROOT / "csrc" / "cuda"
# A GPU faults on a vector access at an address that is not a multiple of its size; x86 does not. The
# alignment check makes the emulator fault too (float4 and float2 carry their GPU alignment, 16 and 8).
ALIGNMENT_CHECK = ["-fsanitize=alignment", "-fno-sanitize-recover=alignment"]


def _matching(text, start, open_ch, close_ch):
    """Index just past the bracket that closes the one at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced {open_ch!r} at offset {start}")


def _split_top_level(text):
    """Split on the commas outside any brackets."""
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[last:i].strip())
            last = i + 1
    parts.append(text[last:].strip())
    return parts


def _kernel_expression_start(text, end):
    """Where the kernel name (with template arguments, e.g. `KERNEL<true, false>`) ending at `end` starts."""
    i = end
    if text[i - 1] == ">":  # template arguments: walk back to the matching <
        depth = 0
        while True:
            i -= 1
            if text[i] == ">":
                depth += 1
            elif text[i] == "<":
                depth -= 1
                if depth == 0:
                    break
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    return i


def rewrite_launches(text):
    out, pos = [], 0
    while True:
        at = text.find("<<<", pos)
        if at < 0:
            out.append(text[pos:])
            return "".join(out)
        start = _kernel_expression_start(text, at)
        kernel = text[start:at]
        close = text.index(">>>", at)
        config = _split_top_level(text[at + 3:close])
        if not 2 <= len(config) <= 4:
            raise ValueError(f"launch of {kernel} has {len(config)} configuration values")
        config += ["0", "nullptr"][len(config) - 2:]
        paren = close + 3
        while text[paren].isspace():
            paren += 1
        args_end = _matching(text, paren, "(", ")")
        args = text[paren:args_end]
        out.append(text[pos:start])
        out.append(f"::emu::launch({kernel}, {config[0]}, {config[1]}, {config[2]}, {config[3]}, "
                   f"[&] {{ {kernel}{args}; }})")
        pos = args_end


SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?(\w+)\s+(\w+)\s*\[\s*\]\s*;")


def rewrite(text):
    return SHARED.sub(r"\1* \2 = ::emu::dynamic_shared<\1>();", rewrite_launches(text))


def sources():
    return sorted(CUDA_SRC.glob("*.cu")) + [CUDA_SRC / "bindings_cuda.cpp"]


def asan_preload():
    """LD_PRELOAD for a Python that loads a memcheck build: the AddressSanitizer runtime first, then the C++
    library, whose exceptions (the bindings' errors) the runtime intercepts and must find at start-up."""
    def library(name):
        return subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True,
                              check=True).stdout.strip()
    return f"{library('libasan.so')} {library('libstdc++.so')}"


def build(out_dir=None, verbose=False, memcheck=False):
    """Build (or reuse) the emulated extension; return the path of the module file."""
    out_dir = pathlib.Path(out_dir or ROOT / "build" / "cuda_emulator")
    inputs = sources() + sorted(CUDA_SRC.glob("*.h")) + sorted(CUDA_SRC.glob("*.cuh")) + \
        sorted((HERE / "include").glob("*.h")) + [pathlib.Path(__file__)]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()[:16] + ("-memcheck" * memcheck)
    flags = (["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"] if memcheck else
             ["-O3", "-march=native", "-g0"]) + ALIGNMENT_CHECK
    target = out_dir / digest / ("_cuda" + sysconfig.get_config_var("EXT_SUFFIX"))
    if target.exists():
        return target
    (out_dir / digest).mkdir(parents=True, exist_ok=True)
    # Two processes may want the same build at once (pytest -n 2 runs two emulator tests side by side):
    # the second waits for the first's lock, then finds its module instead of writing the same files
    with open(out_dir / digest / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _compile(target, flags, verbose)
    return target


def _compile(target, flags, verbose):
    import pybind11

    gen = target.parent / "src"
    gen.mkdir(exist_ok=True)
    objects, procs = [], []
    for src in sources():
        cpp = gen / (src.stem + ".cpp")
        cpp.write_text(f'#line 1 "{src}"\n' + rewrite(src.read_text()))
        obj = gen / (src.stem + ".o")
        cmd = ["g++", "-std=c++17", *flags, "-fPIC", "-w", "-c", str(cpp), "-o", str(obj),
               "-I", str(HERE / "include"), "-I", str(CUDA_SRC), "-I", pybind11.get_include(),
               "-I", sysconfig.get_paths()["include"], "-DMINIGPT_CUDA_EMULATOR",
               '-DMINIGPT_CUDA_ARCHITECTURES="emulated"', "-DMINIGPT_WGMMA"]
        procs.append((src, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        objects.append(str(obj))
    failed = []
    for src, proc in procs:
        output = proc.communicate()[0]
        if proc.returncode != 0:
            failed.append(f"{src.name}:\n{output}")
        elif verbose and output:
            print(output)
    if failed:
        raise RuntimeError("the CUDA emulator build failed:\n" + "\n".join(failed))
    tmp = target.with_suffix(".tmp")
    subprocess.run(["g++", "-shared", *flags, "-o", str(tmp), *objects], check=True)
    tmp.rename(target)  # whole or not at all: an interrupted build is not reused


def build_program(source, out_path, memcheck=False):
    """Compile one stand-alone .cu program (no Python, no pybind11) for the emulator; return its path."""
    source, out_path = pathlib.Path(source), pathlib.Path(out_path)
    cpp = out_path.with_suffix(".cpp")
    cpp.write_text(f'#line 1 "{source}"\n' + rewrite(source.read_text()))
    flags = (["-O1", "-g", "-fsanitize=address"] if memcheck else ["-O1"]) + ALIGNMENT_CHECK
    subprocess.run(["g++", "-std=c++17", *flags, "-w", "-DMINIGPT_CUDA_EMULATOR", "-I", str(HERE / "include"),
                    "-I", str(CUDA_SRC), str(cpp), "-o", str(out_path)],
                   check=True, capture_output=True, text=True)
    return out_path


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else None, verbose=True))
