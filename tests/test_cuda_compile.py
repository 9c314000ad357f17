"""Every CUDA kernel compiles, on every run, with no GPU: NVRTC (pip's nvidia-cuda-nvrtc-cu12, what the CUDA backend
uses at run time) for sm_80 (A100) and sm_90 (H100), and nvcc too where one is installed.

The oracle is the compiler: any error fails the test with the compiler's log. The cubins must also hold every kernel
the model loads (cuda/cuda_model.cpp looks them up by name)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cpp_core import cuda

MODEL_KERNELS = re.findall(r'"(\w+_v\d|quantize_q8)"', (cuda.SOURCE_DIR / "cuda_model.cpp").read_text())


def test_the_model_loads_kernels_that_exist():
    """The names cuda_model.cpp looks up are kernels of the sources (a typo would fail only on a GPU otherwise)."""
    main, headers = cuda.kernel_sources()
    defined = set(re.findall(r'extern "C" __global__ void (\w+)\(', "".join(headers.values())))
    assert len(set(MODEL_KERNELS)) >= 15 and set(MODEL_KERNELS) <= defined, set(MODEL_KERNELS) - defined
    for name in cuda.KERNEL_FILES:
        assert f'#include "cuda/{name}"' in main


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvrtc_compiles_every_kernel(arch):
    if cuda.find_nvrtc() is None:
        pytest.skip("no NVRTC installed (pip install nvidia-cuda-nvrtc-cu12; a dev dependency on Linux)")
    image = cuda.compile_kernels(arch)  # raises CudaError with the log on any compile error
    assert image[:4] == b"\x7fELF"  # a cubin is an ELF file
    for name in set(MODEL_KERNELS):
        assert name.encode() in image, name


def test_nvrtc_reports_a_compile_error(monkeypatch):
    """The error path works: a broken kernel gives CudaError carrying the compiler's message."""
    if cuda.find_nvrtc() is None:
        pytest.skip("no NVRTC installed")
    main, headers = cuda.kernel_sources()
    broken = dict(headers, **{"cuda/ops.cu": headers["cuda/ops.cu"] + "\nextern \"C\" __global__ void oops() { undefined_thing(); }\n"})
    monkeypatch.setattr(cuda, "kernel_sources", lambda: (main, broken))
    with pytest.raises(cuda.CudaError, match="undefined_thing"):
        cuda.compile_kernels("compute_90")  # PTX: the front end is enough to fail


def test_nvcc_compiles_every_kernel(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("no nvcc on this machine (NVRTC is what the backend uses; this is a second opinion)")
    main, _ = cuda.kernel_sources()
    src = tmp_path / "all.cu"
    src.write_text(main)
    r = subprocess.run([nvcc, "-std=c++17", "-arch=sm_90", "-cubin", "-I", str(cuda.SOURCE_DIR.parent), "-o",
                        str(tmp_path / "all.cubin"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "all.cubin").stat().st_size > 0
