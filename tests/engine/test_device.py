"""Which autocast precision `run.dtype = "auto"` picks."""

import torch

from arcsolver.engine.device import cpu_bf16_matmul, resolve_dtype

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
AVX512_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_bf16_on_cpus_that_multiply_it_natively():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu, AVX2) == torch.float32
    assert resolve_dtype("auto", cpu, AVX512_BF16) == torch.bfloat16
    assert resolve_dtype("auto", cpu, AMX) == torch.bfloat16
    assert cpu_bf16_matmul(AMX) == "amx_bf16" and cpu_bf16_matmul(AVX512_BF16) == "avx512_bf16"


def test_flags_are_whole_words_and_settings_win():
    # "avx512_bf16" must be a flag, not part of a model name or another flag's text.
    assert cpu_bf16_matmul("model name\t: avx512_bf16 lookalike\nflags\t\t: avx2 xavx512_bf16\n") is None
    assert resolve_dtype("float32", torch.device("cpu"), AMX) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu"), AVX2) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cuda"), AVX2) == torch.bfloat16
