"""The CUDA backend from Python: compile the kernels with NVRTC, make a model behind the seam.

    from cpp_core.cuda import CudaLlama, cuda_status
    ok, why = cuda_status()                       # (False, "no CUDA driver: ...") on a machine without a GPU
    model = CudaLlama(GGUFFile("model.gguf"), n_ctx=4096, n_gpu_layers=-1)   # NumpyLlama's forward protocol

Why NVRTC at run time (docs/24-gpu.md says more):
- The normal build stays the CPU build: no CUDA toolkit, no CUDA library linked. cpp_core/src/cuda/driver.cpp opens
  libcuda.so.1 itself when a CUDA model is made; without it, one clear error.
- The kernels (cpp_core/src/cuda/*.cu) are compiled on the machine that runs them, for the GPU it has, by NVRTC from
  the pip wheel nvidia-cuda-nvrtc-cu12 (or a system libnvrtc). A CUDA 12 cubin loads on every driver since the
  CUDA 12.0 generation (R525+); CUDA 13 binaries (pip's nvidia-cuda-nvcc, this machine's nvcc) would need R580+.
- The same sources are compiled in CI with no GPU (tests/test_cuda_compile.py), so a kernel that does not compile
  fails the suite, and their per-thread code runs on the CPU (cpp_core/src/bindings/bind_cuda_host.cpp).
"""
from __future__ import annotations

import ctypes
import glob
import os
from pathlib import Path

import numpy as np

from . import _core
from .model import model_spec  # the weights as the C++ model takes them: one place for both backends

__all__ = ["CudaLlama", "CudaError", "cuda_status", "compile_kernels", "kernel_sources", "find_nvrtc"]

SOURCE_DIR = Path(__file__).parent / "src" / "cuda"
# The kernel files, in the order one program includes them (each includes what it needs; #pragma once).
KERNEL_FILES = ("matvec.cu", "matmul.cu", "ops.cu", "attention.cu")
VERSIONS = {"matvec": ("v0", "v1", "v2"), "matmul": ("v0", "v1", "v2"), "attention": ("v0", "v1"), "rmsnorm": ("v0", "v1", "v2")}
DEFAULT_VERSIONS = {"matvec": "v2", "matmul": "v2", "attention": "v1", "rmsnorm": "v2"}


class CudaError(RuntimeError):
    """No driver, no device, no compiler, or a kernel that does not compile: one line."""


# ---- the sources ----
def kernel_sources() -> tuple[str, dict[str, str]]:
    """(main program, {include name: text}) for NVRTC: the program includes every kernel file."""
    headers = {f"cuda/{p.name}": p.read_text() for p in sorted(SOURCE_DIR.glob("*.cu*"))}
    main = "".join(f'#include "cuda/{name}"\n' for name in KERNEL_FILES)
    return main, headers


# ---- NVRTC through ctypes ----
def find_nvrtc() -> str | None:
    """Path of a libnvrtc: the pip wheel nvidia-cuda-nvrtc-cu12 first, then CUDA_HOME / the system's."""
    candidates = []
    try:
        import nvidia  # the wheels' namespace package: nvidia/cuda_nvrtc/lib (cu12), nvidia/cu13/lib (CUDA 13)
        for root in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so.*")))
            candidates += sorted(glob.glob(os.path.join(root, "cu1*", "lib", "libnvrtc.so.*")))
    except ImportError:
        pass
    for home in filter(None, (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda")):
        candidates += sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")))
        candidates += sorted(glob.glob(os.path.join(home, "lib", "libnvrtc.so*")))
    candidates = [c for c in candidates if "builtins" not in c and ".alt." not in c]
    return candidates[0] if candidates else None


def _nvrtc(path: str | None = None):
    path = path or find_nvrtc()
    if path is None:
        raise CudaError("no NVRTC: pip install nvidia-cuda-nvrtc-cu12 (or install a CUDA toolkit)")
    lib = ctypes.CDLL(path)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def nvrtc_version(path: str | None = None) -> tuple[int, int]:
    lib = _nvrtc(path)
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def compile_kernels(arch: str = "sm_90", nvrtc: str | None = None, extra_options=()) -> bytes:
    """Every kernel file as one program, compiled by NVRTC: a cubin for arch "sm_XY", or PTX for "compute_XY".

    Raises CudaError with the compiler's log (its first lines) when a kernel does not compile.
    """
    lib = _nvrtc(nvrtc)
    main, headers = kernel_sources()
    names = list(headers)
    prog = ctypes.c_void_p()

    def check(code, what):
        if code != 0:
            raise CudaError(f"NVRTC {what}: {lib.nvrtcGetErrorString(code).decode()}")

    n = len(names)
    check(lib.nvrtcCreateProgram(ctypes.byref(prog), main.encode(), b"llama_lessons.cu", n,
                                 (ctypes.c_char_p * n)(*[headers[k].encode() for k in names]),
                                 (ctypes.c_char_p * n)(*[k.encode() for k in names])), "nvrtcCreateProgram")
    try:
        options = [f"--gpu-architecture={arch}", "--std=c++17", "-default-device", *extra_options]
        code = lib.nvrtcCompileProgram(prog, len(options), (ctypes.c_char_p * len(options))(*[o.encode() for o in options]))
        if code != 0:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            raise CudaError(f"the CUDA kernels do not compile for {arch}:\n{log.value.decode(errors='replace').strip()}")
        cubin = arch.startswith("sm_")
        size = ctypes.c_size_t()
        check((lib.nvrtcGetCUBINSize if cubin else lib.nvrtcGetPTXSize)(prog, ctypes.byref(size)), "get size")
        out = ctypes.create_string_buffer(size.value)
        check((lib.nvrtcGetCUBIN if cubin else lib.nvrtcGetPTX)(prog, out), "get image")
        return out.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def supported_archs(nvrtc: str | None = None) -> list[int]:
    """The sm_XY numbers this NVRTC can write cubins for, e.g. [50, ..., 90]."""
    lib = _nvrtc(nvrtc)
    n = ctypes.c_int()
    lib.nvrtcGetNumSupportedArchs(ctypes.byref(n))
    archs = (ctypes.c_int * n.value)()
    lib.nvrtcGetSupportedArchs(archs)
    return list(archs)


_IMAGES: dict[str, bytes] = {}
# Compiled images are kept here, named by a hash of the sources: a machine with no NVRTC can run with images compiled
# elsewhere (python -m cpp_core.cuda prebuild sm_80 sm_90), and a changed source never loads a stale image.
IMAGE_DIR = Path(os.environ.get("LLAMA_LESSONS_CUDA_IMAGES", Path(__file__).resolve().parents[1] / "build" / "cuda-kernels"))


def source_hash() -> str:
    import hashlib
    main, headers = kernel_sources()
    h = hashlib.sha256(main.encode())
    for name in sorted(headers):
        h.update(name.encode() + b"\0" + headers[name].encode())
    return h.hexdigest()[:16]


def image_path(arch: str) -> Path:
    return IMAGE_DIR / f"{source_hash()}-{arch}.{'cubin' if arch.startswith('sm_') else 'ptx'}"


def prebuild(archs) -> list[Path]:
    """Compile for each arch into IMAGE_DIR (for a GPU machine without NVRTC); returns the files."""
    IMAGE_DIR.mkdir(parents=True, exist_ok=True)
    out = []
    for arch in archs:
        path = image_path(arch)
        path.write_bytes(compile_kernels(arch))
        out.append(path)
    return out


def image_for_device() -> bytes:
    """The kernels compiled for this machine's GPU (once per process): a cubin for its sm_XY, or, for a GPU newer than
    this NVRTC knows, PTX of the newest architecture it knows, which the driver compiles the rest of the way.
    A prebuilt image for the device's sm_XY (IMAGE_DIR) is used as it is."""
    info = device_info()
    cc = 10 * info["cc"][0] + info["cc"][1]
    if f"sm_{cc}" in _IMAGES:
        return _IMAGES[f"sm_{cc}"]
    if image_path(f"sm_{cc}").is_file():
        _IMAGES[f"sm_{cc}"] = image_path(f"sm_{cc}").read_bytes()
        return _IMAGES[f"sm_{cc}"]
    if find_nvrtc() is None:
        raise CudaError(f"no NVRTC to compile the kernels (pip install nvidia-cuda-nvrtc-cu12) and no prebuilt "
                        f"{image_path(f'sm_{cc}')}")
    archs = supported_archs()
    arch = f"sm_{cc}" if cc in archs else f"compute_{max(a for a in archs if a <= cc)}"
    if arch not in _IMAGES:
        _IMAGES[arch] = compile_kernels(arch)
    return _IMAGES[arch]


# ---- the device ----
def device_info() -> dict:
    """The GPU as the driver sees it; CudaError (one line) without a driver or a device."""
    try:
        return _core.cuda_device_info()
    except RuntimeError as e:
        raise CudaError(str(e)) from None


def cuda_status() -> tuple[bool, str]:
    """(True, "NVIDIA H100 ... driver 12.4") or (False, why not): for run.py's error and the tests' skips."""
    try:
        info = device_info()
    except CudaError as e:
        return False, str(e)
    v = info["driver_version"]
    return True, f"{info['name']} (sm_{info['cc'][0]}{info['cc'][1]}), CUDA driver {v // 1000}.{v % 1000 // 10}"


# ---- the model ----
class CudaLlama:
    """The forward pass on the GPU behind the seam; NumpyLlama's and CppLlama's forward() protocol.

    n_gpu_layers: llama.cpp's -ngl: the last n layers on the GPU (-1, or n >= n_layer: every layer and the output);
    the first layers and, when not every layer is on the GPU, the output run on the CPU (n_threads threads).
    versions: kernel versions, e.g. {"matvec": "v1"} (DEFAULT_VERSIONS otherwise). graphs: decode as a CUDA graph.
    """

    def __init__(self, gguf, n_ctx: int, n_gpu_layers: int = -1, n_threads: int = 1, kv_type: str = "f16",
                 versions: dict | None = None, graphs: bool = True):
        c, hparams, weights = model_spec(gguf)
        self.config = c
        if not 1 <= int(n_ctx) <= c.n_ctx_train:
            raise ValueError(f"n_ctx must be between 1 and the model's training context {c.n_ctx_train}, got {n_ctx}")
        if kv_type != "f16":
            raise ValueError("the CUDA backend keeps its KV cache in float16: use -ctk f16 -ctv f16")
        chosen = {**DEFAULT_VERSIONS, **(versions or {})}
        for family, version in chosen.items():
            if version not in VERSIONS.get(family, ()):
                raise ValueError(f"no CUDA {family} version {version!r}")
        image = image_for_device()  # CudaError first, before anything is read
        self.n_ctx, self._gguf = int(n_ctx), gguf
        try:
            self._model = _core.Backend("cuda", hparams, weights, self.n_ctx, n_threads=int(n_threads), kv_type="f16",
                                        n_gpu_layers=int(n_gpu_layers), kernel_image=image, versions=chosen, graphs=graphs)
        except RuntimeError as e:
            raise CudaError(str(e).splitlines()[0]) from None
        except ValueError as e:
            raise ValueError(f"CUDA backend: {e}") from None

    @property
    def kv_type(self) -> str:
        return "f16"

    @property
    def kv_cache_bytes(self) -> int:
        return self._model.kv_cache_bytes

    def describe(self) -> str:
        return self._model.describe()

    def reset(self) -> None:
        self._model.reset()

    def forward(self, tokens, pos: int, last_only: bool = False) -> np.ndarray:
        from lessons.l08_transformer import check_forward_args

        tokens = check_forward_args(tokens, pos, self.n_ctx, self.config.n_vocab)
        return self._model.forward(tokens.astype(np.int32), int(pos), bool(last_only))


def main(argv=None) -> int:
    """python -m cpp_core.cuda prebuild sm_80 sm_90  |  python -m cpp_core.cuda status"""
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["prebuild"] and len(argv) > 1:
        try:
            for path in prebuild(argv[1:]):
                print(path)
        except CudaError as e:
            print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
            return 1
        return 0
    if argv == ["status"]:
        ok, why = cuda_status()
        print(why)
        return 0 if ok else 1
    print("usage: python -m cpp_core.cuda prebuild ARCH... | status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
