"""Best-of-N reranking: generate N videos per prompt with a diffusers text-to-video model, score them
with a video reward, keep the best, and save everything (mp4s, JSON/CSV table, contact sheets, and
an ``index.html`` results page to watch and compare them in a browser).

Real model (downloads Wan2.1-T2V-1.3B and the reward weights on first use; a GPU is advised):

    python examples/rerank.py --prompt "a red fox running through fresh snow" --n 8 --top-k 3

Anywhere in seconds, offline (a tiny random pipeline and a tiny random reward):

    python examples/rerank.py --tiny --prompt "a red fox in snow" --n 4

Many prompts on 8 GPUs (accelerate splits the prompts between the processes; rank 0 merges):

    accelerate launch --num_processes 8 examples/rerank.py --prompts-file prompts.txt --n 8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import reward
from integrations.diffusers import TINY_FAMILIES, TINY_REWARD, build_tiny_pipeline, tiny_generation_kwargs
from integrations.diffusers.best_of_n import BestOfNResult, best_of_n
from integrations.diffusers.pruning import EarlyPruning
from reward.scoring import Processes

DEFAULT_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
DEFAULT_REWARD = "aigc-vqa"
#: Offline rewards for --tiny, best first: the tiny AIGC-VQA once registered, then fallbacks.
#: The random weights of the --tiny reward: the same in every process and every (resumed) run.
TINY_REWARD_SEED = 0


def build_parser(description: str = __doc__.split("\n\n")[0]) -> argparse.ArgumentParser:
    """The generation and reward flags (examples/search.py adds its own to them)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeat for several)")
    parser.add_argument("--prompts-file", type=Path, help="a text file with one prompt per line (# comments skipped)")
    parser.add_argument("--n", type=int, default=4, help="candidates per prompt (default 4)")
    parser.add_argument("--top-k", type=int, default=3, help="candidates per prompt to print (default 3; all are saved)")
    parser.add_argument("--batch-size", type=int, default=1, help="candidates per pipeline call (default 1)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"diffusers hub id or local folder (default {DEFAULT_MODEL})")
    parser.add_argument("--reward", help=f"reward name (default {DEFAULT_REWARD}; with --tiny: {TINY_REWARD})")
    parser.add_argument("--weights", help="reward weights: native folder, checkpoint file, hub id or URL")
    parser.add_argument("--out", type=Path, default=Path("rerank_out"), help="output folder (default rerank_out)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the pipeline's; 2 with --tiny)")
    parser.add_argument("--frames", type=int, help="frames per video (default: the pipeline's)")
    parser.add_argument("--height", type=int, help="video height (default: the pipeline's)")
    parser.add_argument("--width", type=int, help="video width (default: the pipeline's)")
    parser.add_argument("--guidance-scale", type=float, help="classifier-free guidance (default: the pipeline's)")
    parser.add_argument("--negative-prompt", help="negative prompt for every video")
    parser.add_argument("--device", help="generator device (default: this process's accelerate device, e.g. cuda:R)")
    parser.add_argument("--reward-device", help="reward device (default: --device)")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"],
                        help="generator weights dtype (default bfloat16; the Wan VAE stays float32)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; candidate j of prompt i uses seed + 100000 i + j")
    parser.add_argument("--fps", type=float, default=16, help="frame rate of the saved mp4s (default 16)")
    parser.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    parser.add_argument("--prune-step", type=int, help="early pruning: preview each candidate after this many steps")
    parser.add_argument("--prune-keep", type=int, default=1,
                        help="early pruning: stop candidates whose preview is below the k-th best so far (default 1)")
    parser.add_argument("--tiny", action="store_true", help="tiny random pipeline and reward, offline, in seconds")
    parser.add_argument("--tiny-family", default="wan", choices=TINY_FAMILIES, help="pipeline family for --tiny (default wan)")
    return parser


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if args.prompts_file is not None:
        lines = args.prompts_file.read_text().splitlines()
        args.prompt += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not args.prompt:
        parser.error("give at least one --prompt or a --prompts-file")
    return args


def choose_device(args: argparse.Namespace) -> Processes:
    """Join the ``accelerate launch`` run (or stand alone) and default ``--device`` to this process's device."""
    processes = Processes.current(cpu=args.device.startswith("cpu") if args.device else None)
    args.device = args.device or str(processes.device)
    return processes


class SetupError(Exception):
    """The generator or the reward cannot be loaded: one line for the user, naming the fix."""


def load_pipeline(args: argparse.Namespace):
    if args.tiny:
        return build_tiny_pipeline(args.tiny_family, device=args.device)
    from diffusers import DiffusionPipeline

    try:
        pipe = DiffusionPipeline.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0].split(" Please check out the root cause")[0].rstrip(".")  # no trace shown
        raise SetupError(
            f"cannot load the generator {args.model!r} ({reason}). Pass --model with a diffusers hub id you can "
            "download (with network access) or a local pipeline folder, or try --tiny for a tiny random pipeline."
        ) from error
    if type(pipe).__name__ == "WanPipeline":
        pipe.vae.to(torch.float32)  # Wan decodes in float32, as its authors recommend
    return pipe.to(args.device)


def load_reward(args: argparse.Namespace) -> reward.VideoReward:
    device = args.reward_device or args.device
    if args.tiny:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_REWARD_SEED)
            return reward.load(args.reward or TINY_REWARD, weights=args.weights, pretrained=False, device=device)
    dtype = None if args.dtype == "float32" else args.dtype
    try:
        return reward.load(args.reward or DEFAULT_REWARD, weights=args.weights, device=device, dtype=dtype)
    except reward.WeightsNotFoundError as error:
        raise SetupError(f"cannot load the reward: {error}") from error


def generation_kwargs(args: argparse.Namespace) -> dict:
    """Only what the user set (the pipeline's own defaults otherwise); tiny sizes with --tiny."""
    kwargs = tiny_generation_kwargs(args.tiny_family) if args.tiny else {}
    chosen = {
        "num_inference_steps": args.steps if args.steps is not None else (2 if args.tiny else None),
        "num_frames": args.frames, "height": args.height, "width": args.width,
        "guidance_scale": args.guidance_scale, "negative_prompt": args.negative_prompt,
    }
    kwargs.update({key: value for key, value in chosen.items() if value is not None})
    return kwargs


def print_ranking(result: BestOfNResult, prompts: list[str], top_k: int) -> None:
    components = list(dict.fromkeys(name for c in result.candidates for name in c.components))
    header = ["rank", "seed", "score", *components, "file"]
    for i, prompt in enumerate(prompts):
        print(f"\nprompt {i}: {prompt!r}")
        rows = [[str(c.rank), str(c.seed), f"{c.score:.4f}", *(f"{c.components[k]:.4f}" for k in components),
                 str(c.file) if c.finished else f"(stopped after step {c.pruned_at_step}; preview score)"
                 if c.pruned_at_step is not None else f"({c.error})"]
                for c in result.for_prompt(i)[:top_k]]
        widths = [max(len(row[col]) for row in [header, *rows]) for col in range(len(header))]
        for row in [header, *rows]:
            print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    print(f"\n{len(result.candidates)} candidates ({result.generated} generated now) in {result.out_dir}/videos")
    print(f"table: {result.table_csv} and {result.table_json}")
    print("contact sheets: " + ", ".join(str(path) for path in result.contact_sheets))
    print(f"results page (open in a browser): {result.gallery}")
    if result.pruning is not None:
        report = result.pruning
        print(f"early pruning stopped {report.pruned} of {report.checked} candidates: {report.steps_run + report.preview_calls} "
              f"denoiser calls instead of {report.steps_without_pruning} ({report.saved_fraction:.0%} saved)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    processes = choose_device(args)
    try:
        pipe = load_pipeline(args)
        model = load_reward(args)
    except SetupError as error:
        print(f"rerank.py: error: {error}", file=sys.stderr)
        return 2
    if processes.is_main:
        print(f"generator: {type(pipe).__name__} ({'tiny random ' + args.tiny_family if args.tiny else args.model})")
        print(f"reward: {args.reward or (TINY_REWARD if args.tiny else DEFAULT_REWARD)} on {model.device}")
        print(f"processes: {processes.world}")
    result = best_of_n(
        pipe, args.prompt, model, n=args.n, batch_size=args.batch_size, seed=args.seed, top_k=min(args.top_k, args.n),
        out_dir=args.out, resume=not args.no_resume, fps=args.fps, processes=processes,
        prune=EarlyPruning(args.prune_step, keep=args.prune_keep) if args.prune_step else None, **generation_kwargs(args),
    )
    if result is not None:
        print_ranking(result, args.prompt, min(args.top_k, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
