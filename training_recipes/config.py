"""Recipe configs: omegaconf YAML files that may ``extends:`` others, plus ``key=value`` command-line overrides.

``extends`` names one recipe or a list, merged in order (later ones win), then the file itself.

Every key a recipe may set is declared in ``configs/base.yaml``; a typo in a file or an
override fails with the unknown key's name instead of being silently ignored.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

from reward.checkpoints import atomic_write_text

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
BASE_CONFIG = CONFIG_DIR / "base.yaml"
#: Written into every run folder and exported checkpoint: the fully resolved config of the run.
RUN_CONFIG_NAME = "training_config.yaml"
#: Sub-trees whose keys are free-form (constructor overrides, branch names).
OPEN_KEYS = ("model.overrides", "stage.branches", "stage.unfrozen_fraction")


def find_config(name: str | Path) -> Path:
    """A config file path, or the name of a bundled recipe (``pcqa_tiny`` -> configs/pcqa_tiny.yaml)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    bundled = CONFIG_DIR / f"{Path(str(name)).stem}.yaml"
    if bundled.is_file():
        return bundled
    available = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"config {str(name)!r} is neither a file nor a bundled recipe; bundled: {available}")


def _load_chain(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"config {path} extends itself through {[str(p) for p in seen]}")
    config = OmegaConf.load(path)
    parents = config.pop("extends", None)
    if parents is None:
        return config
    if isinstance(parents, str):
        parents = [parents]
    chain = [_load_chain(path.parent / p if (path.parent / p).is_file() else find_config(p), seen + (path,)) for p in parents]
    return OmegaConf.merge(*chain, config)


def load_config(source: str | Path | DictConfig | dict, overrides: Sequence[str] = ()) -> DictConfig:
    """Base defaults <- the recipe file chain <- ``key=value`` overrides; returns a resolved, struct config."""
    base = OmegaConf.load(BASE_CONFIG)
    OmegaConf.set_struct(base, True)
    for key in OPEN_KEYS:
        OmegaConf.set_struct(OmegaConf.select(base, key), False)
    if isinstance(source, (DictConfig, dict)):
        recipe = OmegaConf.create(source)
    else:
        recipe = _load_chain(find_config(source))
    try:
        merged = OmegaConf.merge(base, recipe, OmegaConf.from_dotlist(list(overrides)))
    except ConfigKeyError as error:
        raise ConfigKeyError(f"{error.msg}. Known keys are listed in {BASE_CONFIG}.") from None
    OmegaConf.resolve(merged)
    return merged


def save_config(config: DictConfig, folder: str | Path) -> Path:
    """Write the resolved config as ``training_config.yaml`` (atomically)."""
    path = Path(folder) / RUN_CONFIG_NAME
    atomic_write_text(path, OmegaConf.to_yaml(config, resolve=True))
    return path


def split_cli(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``key=value`` overrides from the other command-line arguments."""
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    return [a for a in argv if a not in overrides], overrides
