"""Inference-time search: spend a budget of denoiser calls per prompt where the reward says (resampling of
partially denoised candidates, search over the initial noise, early pruning or plain best-of-N), and
save every finished video with its lineage, the results tables and contact sheets, as rerank.py does.

Anywhere in seconds, offline (a tiny random pipeline and a tiny random reward):

    python examples/search.py --tiny --prompt "a red fox in snow" --strategy resample --budget 32 --steps 4

Real model (downloads Wan2.1-T2V-1.3B and the reward weights on first use; a GPU is advised):

    python examples/search.py --prompt "a red fox running through fresh snow" --strategy noise-search --budget 400

Many prompts on 8 GPUs (accelerate splits the prompts between the processes; rank 0 merges):

    accelerate launch --num_processes 8 examples/search.py --prompts-file prompts.txt --strategy resample --budget 400

Every rerank.py flag works here too; ``--n`` sets the default budget to the calls of n whole videos.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rerank import (  # noqa: E402  (the sibling example script)
    DEFAULT_REWARD,
    SetupError,
    TINY_REWARD,
    build_parser,
    choose_device,
    generation_kwargs,
    load_pipeline,
    load_reward,
    parse_args,
    print_ranking,
)

from integrations.diffusers.sampler import generation_settings  # noqa: E402
from integrations.diffusers.search import SearchResult, search  # noqa: E402
from integrations.diffusers.search_strategies import (  # noqa: E402
    STRATEGIES,
    BestOfN,
    EarlyPruningSearch,
    NoiseSearch,
    Resample,
    SearchStrategy,
)


def add_search_arguments(parser) -> None:
    group = parser.add_argument_group("search")
    group.add_argument("--strategy", default="resample", choices=sorted(STRATEGIES), help="how to spend the budget (default resample)")
    group.add_argument("--budget", type=int, help="denoiser calls per prompt, a CFG pair counting as one (default: --n x --steps)")
    group.add_argument("--particles", type=int, help="resample: particles (default budget // steps)")
    group.add_argument("--resample-at", help="resample: comma-separated step counts after which to resample (default 1/4, 1/2, 3/4)")
    group.add_argument("--temperature", type=float, default=0.3, help="resample: softmax temperature on standardised previews "
                       "(0 greedy, inf none; default 0.3)")
    group.add_argument("--renoise", type=float, default=0.5, help="resample: share of fresh noise for duplicates (default 0.5)")
    group.add_argument("--preview-frames", type=int, help="resample / early-pruning: frames decoded per preview "
                       "(default: all for resample, 4 for early-pruning)")
    group.add_argument("--first-round", type=int, help="noise-search: videos from fresh seeds first (default half of them)")
    group.add_argument("--per-round", type=int, default=2, help="noise-search: neighbours per round (default 2)")
    group.add_argument("--radius", type=float, default=0.5, help="noise-search: first neighbour radius in (0, 1] (default 0.5)")
    group.add_argument("--shrink", type=float, default=0.7, help="noise-search: radius factor per round (default 0.7)")


def strategy_from(args) -> SearchStrategy:
    if args.strategy == "best-of-n":
        return BestOfN()
    if args.strategy == "early-pruning":
        return EarlyPruningSearch(step=args.prune_step or 1, keep=args.prune_keep, frames=args.preview_frames or 4)
    if args.strategy == "resample":
        at_steps = tuple(int(k) for k in args.resample_at.split(",")) if args.resample_at else None
        return Resample(particles=args.particles, at_steps=at_steps, temperature=args.temperature, renoise=args.renoise,
                        frames=args.preview_frames)
    return NoiseSearch(first_round=args.first_round, per_round=args.per_round, radius=args.radius, shrink=args.shrink)


def print_spend(result: SearchResult) -> None:
    for i, spend in sorted(result.spend.items()):
        print(f"prompt {i}: {spend.denoiser_calls} of {result.budget} denoiser calls, {spend.reward_calls} reward calls")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__.split("\n\n")[0])
    add_search_arguments(parser)
    parser.set_defaults(out=Path("search_out"))
    args = parse_args(argv, parser)
    processes = choose_device(args)
    try:
        pipe = load_pipeline(args)
        model = load_reward(args)
        strategy = strategy_from(args)
    except (SetupError, ValueError) as error:
        print(f"search.py: error: {error}", file=sys.stderr)
        return 2
    kwargs = generation_kwargs(args)
    budget = args.budget or args.n * int(generation_settings(pipe, kwargs)["num_inference_steps"])
    if processes.is_main:
        print(f"generator: {type(pipe).__name__} ({'tiny random ' + args.tiny_family if args.tiny else args.model})")
        print(f"reward: {args.reward or (TINY_REWARD if args.tiny else DEFAULT_REWARD)} on {model.device}")
        print(f"strategy: {strategy} with {budget} denoiser calls per prompt; processes: {processes.world}")
    try:
        result = search(
            pipe, args.prompt, model, strategy=strategy, budget=budget, batch_size=args.batch_size, seed=args.seed,
            top_k=args.top_k, out_dir=args.out, resume=not args.no_resume, fps=args.fps, processes=processes, **kwargs,
        )
    except ValueError as error:  # settings the search refuses (budget, steps, scheduler, output folder)
        print(f"search.py: error: {error}", file=sys.stderr)
        return 2
    if result is not None:
        print_ranking(result, args.prompt, args.top_k)
        print_spend(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
