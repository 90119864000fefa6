"""Peak arithmetic rate of one CPU core: AVX-512 fp32 FMA vs the AVX512_BF16 dot product (VDPBF16PS).

    python benchmarks/bench_cpu_peak.py --write

Why: bf16 autocast can only beat fp32 on a CPU whose bf16 instructions out-run its fp32 ones. This
compiles a C kernel with gcc that keeps twelve independent accumulators busy with one instruction
(``vfmadd231ps`` or ``vdpbf16ps`` on 512-bit registers), so neither latency nor memory limits it, and
reports FLOP per second of process CPU time (one FMA lane = 2 FLOP, one bf16 dot-product lane = 4
FLOP). Needs gcc and a CPU with AVX512_BF16; AMX (which bf16 GEMMs use where present) is not measured.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from results_md import cpu_name, write_section

HEADING = "## CPU peak: fp32 FMA vs bf16 dot product"
ITERATIONS = 200_000_000
ACCUMULATORS = 12

KERNEL = r"""
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define KEEP(v) __asm__ volatile("" : "+v"(v))
#define TWELVE(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)

int main(void) {
  __m512 acc[12];
  const __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-9f);
  const __m512bh bx = (__m512bh)_mm512_set1_epi16(0x3f80), by = (__m512bh)_mm512_set1_epi16(0x3000);
  float sink = 0.0f;

#define ZERO(i) acc[i] = _mm512_setzero_ps();
#define FMA(i) acc[i] = _mm512_fmadd_ps(x, y, acc[i]); KEEP(acc[i]);
#define DOT(i) acc[i] = _mm512_dpbf16_ps(acc[i], bx, by); KEEP(acc[i]);
#define SINK(i) sink += _mm512_reduce_add_ps(acc[i]);

  TWELVE(ZERO)
  double start = cpu_seconds();
  for (long i = 0; i < ITERATIONS; i++) { TWELVE(FMA) }
  double fma_seconds = cpu_seconds() - start;
  TWELVE(SINK)

  TWELVE(ZERO)
  start = cpu_seconds();
  for (long i = 0; i < ITERATIONS; i++) { TWELVE(DOT) }
  double dot_seconds = cpu_seconds() - start;
  TWELVE(SINK)

  printf("%.6f %.6f %g\n", fma_seconds, dot_seconds, sink);
  return 0;
}
"""


def measure() -> dict[str, float]:
    """Compile and run the kernel; GFLOP/s of one core for each instruction."""
    with tempfile.TemporaryDirectory() as folder:
        source, binary = Path(folder) / "peak.c", Path(folder) / "peak"
        source.write_text(KERNEL)
        subprocess.run(["gcc", "-O2", "-mavx512f", "-mavx512bf16", f"-DITERATIONS={ITERATIONS}L", "-o", str(binary),
                        str(source)], check=True)
        fma_seconds, dot_seconds, _ = subprocess.run([str(binary)], check=True, capture_output=True,
                                                      text=True).stdout.split()
    lanes = 16 * ACCUMULATORS * ITERATIONS
    return {"fp32": lanes * 2 / float(fma_seconds) / 1e9, "bf16": lanes * 4 / float(dot_seconds) / 1e9}


def table(rates: dict[str, float]) -> str:
    ratio = rates["bf16"] / rates["fp32"]
    return "\n".join([
        f"`python benchmarks/bench_cpu_peak.py`: one core of {cpu_name()}, {ACCUMULATORS} independent 512-bit "
        "accumulators, FLOP per second of process CPU time.",
        "",
        "| instruction | GFLOP/s per core |",
        "|---|---:|",
        f"| fp32 FMA (`vfmadd231ps`, 32 FLOP) | {rates['fp32']:.0f} |",
        f"| bf16 dot product (`vdpbf16ps`, 64 FLOP) | {rates['bf16']:.0f} |",
        "",
        f"bf16 / fp32 = **{ratio:.2f}x**: " + (
            "on this core no bf16 matrix product can be faster than an fp32 one without AMX, whatever the kernel library."
            if ratio < 1 else f"bf16 matrix products can out-run fp32 ones on this core by up to {ratio:.2f}x."),
    ]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    body = table(measure())
    print(body)
    if args.write:
        write_section(HEADING, body)


if __name__ == "__main__":
    main()
