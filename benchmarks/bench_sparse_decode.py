"""Peak memory and seconds per video of ``score_videos`` with full vs sparse (planned-frame) decoding.

    python benchmarks/bench_sparse_decode.py --write

Clips of 10, 30 and 120 s at 1280x720 and 1920x1080, 24 fps, are encoded once into ``--clips``
(default ``~/.cache/aigc_reward/bench_clips``, outside the repo) with libx264 at its defaults
(keyframe every 250 frames, 3 B-frames; preset veryfast, crf 23), plus one 120 s 1080p clip with a
keyframe every 2 s (48 frames), the GOP of many camera and streaming files, where seeking pays.

Every measurement runs in a fresh process, so its peak resident set (kernel VmHWM) is its own:
``score_videos(model, [clip], num_workers=0, batch_size=1)`` with the default reader (sparse: only
the reward's planned frames) or ``reader=default_reader`` (full: every frame, as before frame
plans). The sparse process then times, apart, reading the planned frames alone
(``read_video(path, frames=model)``) and the model alone on them. Full decoding of long clips needs
tens of GB (every frame as uint8, then as float32): it is run for the 10 s clips only (``--full``).
Rewards: ``dover`` at full size with random weights (``pretrained=False``; weights do not change the
cost) and ``aigc-vqa-tiny``. ``--write`` replaces the "Sparse decoding" section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

HEADING = "## Sparse decoding: scoring long videos"
FPS = 24
SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}
DEFAULT_CLIPS = Path(os.environ.get("AIGC_REWARD_CACHE", "~/.cache/aigc_reward")).expanduser() / "bench_clips"
PROMPT = "a camera pans over a colourful landscape while bright shapes move across it"


def clip_name(seconds: int, size: str, gop: int | None) -> str:
    return f"{seconds}s_{size}" + (f"_gop{gop}" if gop else "") + ".mp4"


def encode_clip(path: Path, seconds: int, size: str, gop: int | None) -> None:
    """A panning textured landscape with moving shapes (compresses like camera footage, not like noise)."""
    import av

    height, width = SIZES[size]
    rng = np.random.default_rng(0)
    coarse = rng.random((height // 40 + 2, width // 40 + 2, 3))
    field = np.kron(coarse, np.ones((40, 40, 1)))[: height + 80, : width * 2]
    field = np.pad(field, ((0, max(0, height + 80 - field.shape[0])), (0, max(0, width * 2 - field.shape[1])), (0, 0)), mode="wrap")
    texture = rng.integers(-6, 7, size=(height, width, 1))
    base = (field * 180 + 40).astype(np.int16)
    partial = path.with_name(f".{path.name}.partial")
    with av.open(str(partial), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", **({"g": str(gop), "sc_threshold": "0"} if gop else {})}
        for index in range(seconds * FPS):
            shift = (index * 3) % width
            frame = base[40: 40 + height, shift: shift + width] + texture
            for k in range(4):
                top = int((0.5 + 0.4 * np.sin(index / 30 + k)) * (height - 120))
                left = int((0.5 + 0.4 * np.cos(index / 45 + 2 * k)) * (width - 160))
                frame[top: top + 120, left: left + 160] = (60 * k + 40, 255 - 50 * k, 120)
            pixels = np.clip(frame, 0, 255).astype(np.uint8)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        output.mux(stream.encode(None))
    partial.replace(path)


def ensure_clips(folder: Path, lengths: list[int], sizes: list[str], gop_clip: bool) -> list[tuple[int, str, int | None]]:
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [(seconds, size, None) for size in sizes for seconds in lengths]
    if gop_clip:
        wanted.append((max(lengths), sizes[-1], 2 * FPS))
    for seconds, size, gop in wanted:
        path = folder / clip_name(seconds, size, gop)
        if not path.is_file():
            print(f"encoding {path} ...", flush=True)
            encode_clip(path, seconds, size, gop)
    return wanted


def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def timed(step):
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure(path: Path, reward_name: str, mode: str) -> dict:
    """One process: build the reward, score the clip once in ``mode``; sparse also times its parts."""
    import reward
    from reward.bench import start_peak
    from reward.scoring import VideoItem, score_videos
    from reward.scoring.dataset import default_reader
    from reward.video.io import read_video

    torch.manual_seed(0)
    model = reward.load(reward_name, pretrained=False)
    item = VideoItem(path.name, str(path), PROMPT)
    model.score(torch.rand(1, 8, 3, 240, 320), PROMPT)  # warm-up (kernel selection), not part of a video's cost
    loaded = start_peak(torch.device("cpu"))  # frees what the warm-up left and restarts VmHWM from here
    reader = default_reader if mode == "full" else None
    run, wall, cpu = timed(lambda: score_videos(model, [item], batch_size=1, num_workers=0, progress=False, reader=reader))
    record = run.records[0]
    if "error" in record:
        raise RuntimeError(record["error"])
    result = {"mode": mode, "seconds": wall, "cpu_seconds": cpu, "peak_rss": status_bytes("VmHWM"), "loaded_rss": loaded,
              "score": record["score"]}
    if mode == "sparse":
        clip, result["decode_seconds"], result["decode_cpu_seconds"] = timed(lambda: read_video(path, frames=model))
        result["planned_frames"], result["num_frames"], result["clip_bytes"] = len(clip.plan), clip.num_frames, clip.frames.numel()
        base = start_peak(torch.device("cpu"))
        _, result["model_seconds"], result["model_cpu_seconds"] = timed(lambda: model.score(clip, PROMPT))
        result["model_peak_growth"] = status_bytes("VmHWM") - base
    return result


def measure_decode_all(path: Path) -> dict:
    """Time of decoding every frame to RGB as a full read does, without keeping the frames (its time, not its memory)."""
    from reward.video.decode import open_video

    def decode_all() -> int:
        with open_video(path) as (container, stream):
            return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24") is not None)

    frames, wall, cpu = timed(decode_all)
    return {"mode": "decode_all", "frames": frames, "seconds": wall, "cpu_seconds": cpu}


def model_rate(reward_name: str) -> dict:
    """FLOPs of one forward on the planned frames and this machine's fp32 matmul rate, measured now."""
    import reward
    from torch.utils.flop_counter import FlopCounterMode

    model = reward.load(reward_name, pretrained=False)
    plan = model.frame_plan(240)
    clip = torch.randint(0, 256, (1, len(plan), 3, 720, 1280), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        model.score(clip, PROMPT, frame_plan=plan)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    _, _, cpu = timed(lambda: [a @ b for _ in range(5)])
    return {"flops": counter.get_total_flops(), "matmul_flops_per_cpu_s": 5 * 2 * 2048**3 / cpu}


def full_decode_fits(seconds: int, size: str) -> bool:
    """Whether scoring a fully decoded clip surely fits: measured (dover, 10 s 720p), the process peaks at ~10x the
    decoded frames' uint8 size (the frames, their stack, the float32 batch, input checks, the technical frames'
    float copy) above what the model alone needs (~3.5 GiB); a 10 s 1080p clip was killed for memory on a 24 GiB
    machine with 21 GiB free. Required: 15x the frames plus 3.5 GiB, with 4 GiB to spare."""
    height, width = SIZES[size]
    needed = seconds * FPS * height * width * 3 * 15 + (7 << 29)
    available = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemAvailable:"))
    return needed + (4 << 30) < available


def run_child(*args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if output.returncode:
        raise RuntimeError(f"{args} ended with status {output.returncode}: {output.stderr[-2000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def measured(folder: Path, reward_name: str, name: str, mode: str, resume: bool) -> dict:
    """One measurement, kept in ``folder/results`` so that ``--resume`` continues an interrupted run."""
    record = folder / "results" / f"{reward_name}__{name}__{mode}.json"
    if resume and record.is_file():
        return json.loads(record.read_text())
    load = os.getloadavg()[0]
    result = {**run_child("--child", str(folder / name), reward_name, mode), "load": load}
    record.parent.mkdir(exist_ok=True)
    record.write_text(json.dumps(result))
    return result


def gib(value: float) -> str:
    return f"{value / 2**30:.2f}"


def table(args: argparse.Namespace, clips: list, results: dict, rates: dict) -> str:
    loads = [result["load"] for result in results.values()]
    lines = [
        f"`python benchmarks/bench_sparse_decode.py{' --write' if args.write else ''}`: one clip per process scored by "
        "`score_videos(..., num_workers=0, batch_size=1)` on "
        f"{platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, PyAV frame threads), torch "
        f"{torch.__version__}, shared with other jobs (1-minute load average {min(loads):.1f} to {max(loads):.1f} at the "
        "start of the measurements), so wall times "
        "vary run to run; CPU seconds (all threads) measure the work. Clips: libx264 veryfast crf 23, 24 fps, keyframe "
        "every 250 frames (x264's default) unless marked gop48. Peak RSS: the process's VmHWM (Python, torch, the "
        "model and everything scoring allocated); 'loaded' is its resident set after building the model. Sparse: "
        "`read_video(path, frames=model)` decodes only the planned frames; 'decode every frame' is the time (not the "
        "memory) of decoding every frame to RGB as a full read does; full: every frame decoded, stacked and "
        "converted to float, as before frame plans: run for the 10 s clips only where it fits in this shared machine's "
        "free memory (it needs ~10x the decoded frames' uint8 size beyond the model; a 10 s 1080p run was killed "
        "for memory with 21 GiB free; a 120 s 1080p clip holds "
        f"{gib(120 * FPS * 1080 * 1920 * 3)} GiB of them).",
        "",
        "| reward | clip | frames (planned) | decode every frame: s (CPU s) | full: peak RSS GiB | full: s/video (CPU s) | sparse: peak RSS GiB "
        "(loaded + clip + model) | sparse: s/video (CPU s) | decode planned frames only: s (CPU s) | model only: s (CPU s) "
        "| sparse - model, / decode only |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for reward_name in args.rewards:
        for seconds, size, gop in clips:
            name = clip_name(seconds, size, gop)
            sparse = results[(reward_name, name, "sparse")]
            full = results.get((reward_name, name, "full"))
            full_cells = (
                [gib(full["peak_rss"]), f"{full['seconds']:.1f} ({full['cpu_seconds']:.1f})"] if full else ["not run", "not run"]
            )
            every = results[("any", name, "decode_all")]
            lines.append(
                f"| {reward_name} | {name[:-4]} | {sparse['num_frames']} ({sparse['planned_frames']}) | "
                f"{every['seconds']:.1f} ({every['cpu_seconds']:.1f}) | "
                + " | ".join(full_cells)
                + f" | {gib(sparse['peak_rss'])} ({gib(sparse['loaded_rss'])} + {gib(sparse['clip_bytes'])} + "
                f"{gib(sparse['model_peak_growth'])}) | {sparse['seconds']:.1f} ({sparse['cpu_seconds']:.1f}) | "
                f"{sparse['decode_seconds']:.1f} ({sparse['decode_cpu_seconds']:.1f}) | "
                f"{sparse['model_seconds']:.1f} ({sparse['model_cpu_seconds']:.1f}) | "
                f"{(sparse['cpu_seconds'] - sparse['model_cpu_seconds']) / sparse['decode_cpu_seconds']:.2f} |"
            )
    lines += ["", *summary(args, clips, results), ""]
    for reward_name, rate in rates.items():
        model_seconds = min(r["model_cpu_seconds"] for (n, _, m), r in results.items() if n == reward_name and m == "sparse")
        lines.append(
            f"- `{reward_name}`: one forward on its planned frames is {rate['flops'] / 1e9:.3g} GFLOP; its fastest model-only "
            f"run took {model_seconds:.2f} CPU s: {100 * rate['flops'] / model_seconds / rate['matmul_flops_per_cpu_s']:.2g}% of the "
            f"fp32 matmul rate measured in this run ({rate['matmul_flops_per_cpu_s'] / 1e9:.0f} GFLOP per CPU second, 2048x2048)."
        )
    return "\n".join(lines) + "\n"


def summary(args: argparse.Namespace, clips: list, results: dict) -> list[str]:
    """The targets, checked on the longest, largest default-GOP clip, and memory against length per size."""
    seconds, size = max(args.lengths), args.sizes[-1]
    longest = clip_name(seconds, size, None)
    lines = []
    for reward_name in args.rewards:
        sparse = results[(reward_name, longest, "sparse")]
        overhead = (sparse["cpu_seconds"] - sparse["model_cpu_seconds"]) / sparse["decode_cpu_seconds"]
        spans = []
        for each in args.sizes:
            peaks = [results[(reward_name, clip_name(length, each, None), "sparse")]["peak_rss"] for length in args.lengths]
            spans.append(f"{each} {' / '.join(gib(peak) for peak in peaks)} GiB")
        lines.append(
            f"- **`{reward_name}`, {longest[:-4]}**: peak RSS {gib(sparse['peak_rss'])} GiB"
            + (f" (target below 2 GB: {'met' if sparse['peak_rss'] < 2e9 else '**not met**'})" if reward_name == "dover" else "")
            + f": the loaded process {gib(sparse['loaded_rss'])}, the "
            f"{sparse['planned_frames']} planned frames {gib(sparse['clip_bytes'])}, the model's forward on them "
            f"{gib(sparse['model_peak_growth'])} above that. Time beyond the model, over decoding just the planned frames: "
            f"{overhead:.2f}x in CPU time (target within 1.5x: {'met' if overhead <= 1.5 else '**not met**'}); with the model: "
            f"{sparse['cpu_seconds'] / sparse['decode_cpu_seconds']:.2f}x. Peak RSS over {' / '.join(f'{n} s' for n in args.lengths)}: "
            + "; ".join(spans) + "."
        )
        for length in args.full:
            for each in args.sizes:
                full = results.get((reward_name, clip_name(length, each, None), "full"))
                if full:
                    planned = results[(reward_name, clip_name(length, each, None), "sparse")]
                    lines.append(
                        f"- `{reward_name}`, {length}s_{each}: full decoding peaks at {gib(full['peak_rss'])} GiB and takes "
                        f"{full['cpu_seconds']:.1f} CPU s, sparse {gib(planned['peak_rss'])} GiB and {planned['cpu_seconds']:.1f} "
                        "CPU s, for the same score."
                        if abs(full["score"] - planned["score"]) <= 1e-6 else
                        f"- `{reward_name}`, {length}s_{each}: full and sparse scores differ: {full['score']} vs {planned['score']}."
                    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder the clips are encoded into once")
    parser.add_argument("--rewards", nargs="+", default=["dover", "aigc-vqa-tiny"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 30, 120], help="clip lengths in seconds")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--full", type=int, nargs="+", default=[10], help="clip lengths also scored with full decoding")
    parser.add_argument("--no-gop-clip", action="store_true", help="skip the 120 s 1080p clip with a 2 s GOP")
    parser.add_argument("--resume", action="store_true", help="reuse the measurements an interrupted run kept in CLIPS/results")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    parser.add_argument("--child", nargs=3, metavar=("CLIP", "REWARD", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--rate", metavar="REWARD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        clip, reward_name, mode = args.child
        print(json.dumps(measure_decode_all(Path(clip)) if mode == "decode_all" else measure(Path(clip), reward_name, mode)))
        return
    if args.rate:
        print(json.dumps(model_rate(args.rate)))
        return

    clips = ensure_clips(args.clips.expanduser(), args.lengths, args.sizes, not args.no_gop_clip)
    results: dict = {}
    for reward_name in args.rewards:
        for seconds, size, gop in clips:
            name = clip_name(seconds, size, gop)
            modes = ["sparse"]
            if seconds in args.full and gop is None:
                recorded = args.resume and (args.clips.expanduser() / "results" / f"{reward_name}__{name}__full.json").is_file()
                if recorded or full_decode_fits(seconds, size):
                    modes.append("full")
                else:
                    print(f"skipping the full decode of {name}: not enough free memory now", flush=True)
            for mode in modes:
                print(f"{reward_name} {name} {mode} ...", flush=True)
                results[(reward_name, name, mode)] = measured(args.clips.expanduser(), reward_name, name, mode, args.resume)
                print(json.dumps(results[(reward_name, name, mode)]), flush=True)
    for seconds, size, gop in clips:
        name = clip_name(seconds, size, gop)
        print(f"decoding every frame of {name} ...", flush=True)
        results[("any", name, "decode_all")] = measured(args.clips.expanduser(), "any", name, "decode_all", args.resume)
    rates = {reward_name: run_child("--rate", reward_name) for reward_name in args.rewards}
    text = table(args, clips, results, rates)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results_md import write_section

        write_section(HEADING, text)


if __name__ == "__main__":
    main()
