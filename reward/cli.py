"""``aigc-reward``: score videos, folders and manifests (also under ``accelerate launch``), explain a
score, convert public checkpoints into a native aigc-vqa one, list rewards, benchmark a reward."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import CheckpointError, RewardInputError, ScoringInputError, WeightsNotFoundError
from .precision import DTYPES
from .registry import list_rewards, load, reward_spec

#: ``reward.aigcvqa.model.SIZES`` names, spelled out so building the parser imports no model code.
CONVERT_SIZES = ("paper", "small", "tiny")
#: Rows of the per-video table printed when the results also go to a file.
ROWS_SHOWN_WITH_FILE = 20
DEFAULT_REWARD = "aigc-vqa"
#: Seed of ``--random-weights`` (``--seed`` changes it): the same weights in every run and in every process.
RANDOM_WEIGHTS_SEED = 0


def _model_arguments(parser: argparse.ArgumentParser, *, dtype: bool = True) -> None:
    parser.add_argument("--reward", default=DEFAULT_REWARD, help=f"reward name from `aigc-reward list` (default {DEFAULT_REWARD})")
    parser.add_argument(
        "--weights",
        action="append",
        metavar="SOURCE",
        help="weights: a native folder, a converter's file (e.g. DOVER.pth), a hub id or a URL; "
        "repeat as KEY=SOURCE for rewards built from several files (e.g. dover=DOVER.pth imagereward=ImageReward.pt)",
    )
    parser.add_argument("--random-weights", action="store_true", help="build the reward with random weights (tests, demos)")
    parser.add_argument(
        "--seed", type=int, help=f"seed of the --random-weights initialisation (default {RANDOM_WEIGHTS_SEED}): the same "
        "weights in every run and in every process of `accelerate launch`",
    )
    parser.add_argument("--device", help="torch device (default: the process's accelerate device: cuda if available, else cpu)")
    if dtype:
        parser.add_argument("--dtype", choices=sorted(DTYPES), help="backbone autocast dtype, e.g. bf16 (heads stay fp32)")
    parser.add_argument(
        "--compile", action="store_true",
        help="torch.compile the backbones (the first batches compile, for minutes on a CPU; falls back to eager on failure)",
    )


def _default_device(args: argparse.Namespace) -> str:
    import torch

    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _check_reward_name(name: str) -> None:
    if name not in list_rewards():
        raise ScoringInputError(f"unknown reward {name!r}; choose one of {list_rewards()} (see `aigc-reward list`).")


def weights_argument(values: Sequence[str] | None) -> str | dict[str, str] | None:
    """``--weights`` as ``reward.load`` takes it: one source, or a dict from repeated ``KEY=SOURCE``."""
    if not values:
        return None
    keyed = [v for v in values if "=" in v and not Path(v).expanduser().exists()]
    if not keyed:
        if len(values) > 1:
            raise ScoringInputError(f"--weights given {len(values)} times without KEY=SOURCE; give one source or name each part.")
        return values[0]
    if len(keyed) != len(values):
        raise ScoringInputError("--weights: name every part as KEY=SOURCE when one is named.")
    return dict(value.split("=", 1) for value in values)


def _load_model(args: argparse.Namespace, device: object):
    """The reward; ``--random-weights`` are drawn from a fixed seed on the CPU, whatever came before."""
    import torch

    weights = weights_argument(args.weights)
    dtype = getattr(args, "dtype", None)
    if not args.random_weights:
        if args.seed is not None:
            raise ScoringInputError("--seed sets the --random-weights initialisation: pass --random-weights too.")
        return load(args.reward, weights, device=device, dtype=dtype, compile=args.compile)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED if args.seed is None else args.seed)
        return load(args.reward, weights, pretrained=False, device=device, dtype=dtype, compile=args.compile)


def _score_parser(commands: argparse._SubParsersAction) -> None:
    score = commands.add_parser(
        "score",
        help="score videos, folders, globs or a manifest",
        description="Score videos (files, folders, globs) or a CSV/JSONL manifest (path, prompt[, id]). "
        "Under `accelerate launch` the inputs are sharded across processes and merged by rank 0.",
    )
    score.add_argument("videos", nargs="*", metavar="VIDEO", help="video files, folders (searched recursively) or globs")
    prompts = score.add_mutually_exclusive_group()
    prompts.add_argument("--prompt", help="one prompt for every video")
    prompts.add_argument("--prompts-file", help="a text file with one prompt per line, one line per video, in order")
    score.add_argument("--manifest", help="CSV or JSONL listing path, prompt[, id] per video (instead of VIDEO arguments)")
    _model_arguments(score)
    score.add_argument("--batch-size", type=int, default=8, help="videos per forward pass; only same-shape videos share one")
    score.add_argument("--num-workers", type=int, default=2, help="decoding processes (0 decodes in the main process)")
    score.add_argument("--prefetch", type=int, default=2, help="videos each decoding process keeps ready")
    score.add_argument("--out", help="append results to this JSONL file (one line per video, every component)")
    score.add_argument("--csv", help="append results to this CSV file")
    score.add_argument("--resume", action="store_true", help="skip videos whose id is already in --out/--csv")
    score.add_argument("--html", help="also write a results page to watch and compare the videos (e.g. report.html)")
    score.add_argument("--json", action="store_true", help="print results and summary as JSON instead of tables")
    score.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    score.set_defaults(run=_run_score)


def _explain_parser(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain",
        help="draw where and when a video's quality drops (PNG + mp4)",
        description="Write NAME.png (key frames with the technical map drawn on the fragments it scored and the "
        "aesthetic map over the frame, per-frame curves, prompt and scores), NAME.mp4 (every shown frame) and "
        "NAME.html (a page showing both).",
    )
    explain.add_argument("video", metavar="VIDEO", help="a video file or frame folder")
    explain.add_argument("--prompt", help="the prompt the video was generated from (needed by prompt-conditioned rewards)")
    explain.add_argument("--out", required=True, help="folder for the PNG and the mp4")
    explain.add_argument("--name", default="explain", help="file name stem (default: explain)")
    explain.add_argument("--fps", type=float, default=8, help="frame rate of the mp4")
    explain.add_argument("--json", action="store_true", help="print the files and scores as JSON")
    _model_arguments(explain)
    explain.set_defaults(run=_run_explain)


def _convert_parser(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert",
        help="write a native aigc-vqa checkpoint from DOVER.pth + ImageReward.pt (the zero-shot start)",
        description="Build AIGC-VQA from the public DOVER.pth (technical and aesthetic branches) and ImageReward.pt "
        "(alignment branch) with the ST-Adapter at identity, and save it (config.json + model.safetensors) "
        "for reward.load('aigc-vqa', weights=OUT) or --weights OUT.",
    )
    convert.add_argument("--dover", required=True, help="DOVER.pth: a path, hub id (owner/repo/file) or URL")
    convert.add_argument("--imagereward", required=True, help="ImageReward.pt: a path, a folder holding it, a hub id or URL")
    convert.add_argument("--med-config", help="ImageReward's med_config.json (default: the one beside the checkpoint)")
    convert.add_argument("--sizes", default="paper", choices=CONVERT_SIZES, help="branch sizes of the checkpoints (default paper)")
    convert.add_argument("--tokenizer", help="BERT vocabulary the saved model reads at run time (default: hub bert-base-uncased)")
    convert.add_argument("--out", required=True, help="folder to write")
    convert.set_defaults(run=_run_convert)


def _list_parser(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list the rewards with their components and weight sources")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(run=_run_list)


def _bench_parser(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="time a reward's forward and forward+backward, its FLOPs, share of the matmul rate and peak memory",
        description="Score random videos with the reward: best no-grad forward (`score`) and forward+backward into the "
        "pixels (as fine-tuning uses it) over --iterations, for each --dtypes and --modes (and with checkpointing): "
        "FLOPs per call (torch's FlopCounterMode), achieved GFLOP/s and its percent of this machine's matrix-product "
        "rate measured in the same run and dtype, and peak memory. Weight values do not change the cost, so "
        "--random-weights measures the real thing.",
    )
    _model_arguments(bench, dtype=False)
    bench.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES), help="compute dtypes to compare (default fp32 bf16)")
    bench.add_argument("--modes", nargs="+", default=["eager"], choices=["eager", "compiled"],
                       help="eager backbones and/or backbones wrapped by torch.compile (default eager; compiling takes minutes on a CPU)")
    bench.add_argument("--forward-only", action="store_true", help="time the no-grad forward only (no forward+backward)")
    bench.add_argument("--weights-dtype", choices=["bf16", "fp16"],
                       help="store the frozen backbones' weights in this dtype (reward.load(weights_dtype=...)); --dtypes must match")
    bench.add_argument("--batch-size", type=int, default=1)
    bench.add_argument("--frames", type=int, default=16)
    bench.add_argument("--size", type=int, default=224, help="frame side in pixels")
    bench.add_argument("--iterations", type=int, default=3, help="timed passes of each kind (the best is reported)")
    bench.add_argument("--checkpointing", action="store_true", help="also measure with activation checkpointing")
    bench.add_argument("--json", action="store_true", help="print as JSON")
    bench.set_defaults(run=_run_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigc-reward", description="AIGC video quality rewards from the command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    _score_parser(commands)
    _explain_parser(commands)
    _convert_parser(commands)
    _list_parser(commands)
    _bench_parser(commands)
    return parser


def _items(args: argparse.Namespace):
    from .scoring import attach_prompts, discover_videos, read_manifest, read_prompts_file

    if args.manifest:
        if args.videos or args.prompt or args.prompts_file:
            raise ScoringInputError("--manifest lists the videos and prompts: do not also pass VIDEO, --prompt or --prompts-file.")
        return read_manifest(args.manifest)
    if not args.videos:
        raise ScoringInputError("give VIDEO files, folders or globs, or --manifest.")
    prompts = read_prompts_file(args.prompts_file) if args.prompts_file else None
    return attach_prompts(discover_videos(args.videos), prompt=args.prompt, prompts=prompts)


def _run_score(args: argparse.Namespace) -> int:
    from .scoring import Processes, score_videos
    from .scoring.report import results_table, summary_table

    _check_reward_name(args.reward)
    items = _items(args)
    processes = Processes.current(cpu=args.device.startswith("cpu") if args.device else None)
    model = _load_model(args, args.device or processes.device)
    run = score_videos(
        model,
        items,
        out=args.out,
        csv=args.csv,
        resume=args.resume,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        prefetch=args.prefetch,
        progress=not args.no_progress,
        processes=processes,
    )
    if run is None:
        return 0
    if args.html:
        _write_score_page(args, run.records)
    if args.json:
        print(json.dumps({"reward": args.reward, "results": run.records, "summary": run.summary.as_dict()}, indent=2))
    else:
        limit = ROWS_SHOWN_WITH_FILE if (args.out or args.csv) else None
        print(f"reward: {args.reward}")
        print(results_table(run.records, limit))
        print()
        print(summary_table(run.summary))
    return 0


def _write_score_page(args: argparse.Namespace, records: list) -> None:
    from .gallery import write_gallery
    from .scoring.report import gallery_rows

    settings = {"reward": args.reward, "weights": args.weights or ("random" if args.random_weights else "default"),
                "dtype": args.dtype or "fp32", "videos": len(records), "results": args.out or args.csv or ""}
    pages = write_gallery(gallery_rows(records), args.html, settings=settings, title=f"aigc-reward score: {args.reward}",
                          higher_is_better=reward_spec(args.reward).higher_is_better, progress=not args.no_progress)
    print(f"results page: {pages[0]}" + (f" (+ {len(pages) - 1} more pages)" if len(pages) > 1 else ""), file=sys.stderr)


def _run_explain(args: argparse.Namespace) -> int:
    from .explain import explain_video, explained_frames
    from .video.io import read_video

    _check_reward_name(args.reward)
    model = _load_model(args, _default_device(args))
    video = read_video(args.video, frames=explained_frames(model))
    result = explain_video(model, video, args.prompt, args.out, name=args.name, reward_name=args.reward, fps=args.fps)
    if args.json:
        files = {"png": str(result.png), "mp4": str(result.mp4), "html": str(result.html)}
        print(json.dumps({**files, "scores": result.scores}, indent=2))
    else:
        print("  ".join(f"{name} {value:.4f}" for name, value in result.scores.items()))
        print(f"wrote {result.png}, {result.mp4} and {result.html} (open it in a browser)")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from .aigcvqa.model import aigc_vqa_config
    from .aigcvqa.zero_shot import build_zero_shot

    config = aigc_vqa_config(args.sizes, **({"alignment": {"tokenizer": args.tokenizer}} if args.tokenizer else {}))
    model = build_zero_shot(args.dover, args.imagereward, med_config=args.med_config, config=config)
    out = model.save_pretrained(args.out)
    count = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} (aigc-vqa, {args.sizes} sizes, {count:,} parameters); load it with --weights {out}")
    return 0


def _run_list(args: argparse.Namespace) -> int:
    from .text_table import format_table

    specs = [reward_spec(name) for name in list_rewards()]
    if args.json:
        print(json.dumps([
            {
                "name": s.name,
                "description": s.description,
                "components": list(s.components),
                "weight_sources": s.weight_sources,
                "higher_is_better": s.higher_is_better,
                "score_range": list(s.score_range) if s.score_range else None,
                "tags": list(s.tags),
                "architecture": s.architecture,
            }
            for s in specs
        ], indent=2))
        return 0
    rows = [[s.name, ", ".join(s.components), s.weight_sources, s.description] for s in specs]
    print(format_table(["reward", "components", "weights", "description"], rows))
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    import torch

    from .bench import bench_configurations, bench_report, matmul_rate

    _check_reward_name(args.reward)
    for name, value in (("--batch-size", args.batch_size), ("--frames", args.frames), ("--size", args.size), ("--iterations", args.iterations)):
        if value < 1:
            raise ScoringInputError(f"{name} must be at least 1, got {value}.")
    if args.weights_dtype and set(args.dtypes) != {args.weights_dtype}:
        raise ScoringInputError(f"--weights-dtype {args.weights_dtype} computes in {args.weights_dtype}: pass --dtypes {args.weights_dtype}.")
    device = torch.device(_default_device(args))

    def load_model():
        model = _load_model(args, device)
        return model.store_backbone_weights(args.weights_dtype) if args.weights_dtype else model

    results = bench_configurations(
        load_model, dtypes=args.dtypes, checkpointing=(False, True) if args.checkpointing else (False,),
        modes=args.modes, batch_size=args.batch_size, frames=args.frames, size=args.size, iterations=args.iterations,
        passes=("forward",) if args.forward_only else ("forward", "forward_backward"),
    )
    matmul = [matmul_rate(dtype, device) for dtype in dict.fromkeys(r.dtype for r in results)]
    report = bench_report(args.reward, device, results, batch_size=args.batch_size, frames=args.frames,
                          size=args.size, matmul=matmul)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aigc-reward`` console script; user errors exit with status 2 and one line."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ScoringInputError, RewardInputError, WeightsNotFoundError, CheckpointError) as error:
        print(f"aigc-reward: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
