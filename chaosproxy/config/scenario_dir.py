"""Where scenario files are: the bundled directory, a NAME or a path resolved to a file, and the
files of a directory that count as scenarios (symlinks may not lead out of it)."""

from __future__ import annotations

import os
from pathlib import Path

from chaosproxy.common.errors import ConfigError, Problem
from chaosproxy.config.located import suggest


def bundled_scenario_dir() -> Path:
    """The scenarios shipped inside the package (the top-level `scenarios/` links here)."""
    return Path(__file__).resolve().parent.parent / "data" / "scenarios"


def resolve_scenario(name_or_file: str, scenario_dir: Path | None = None) -> Path:
    """A path (contains a separator or ends in .yaml/.yml) is used as is; a NAME is looked up."""
    directory = scenario_dir if scenario_dir is not None else bundled_scenario_dir()
    looks_like_path = (
        os.sep in name_or_file or "/" in name_or_file or name_or_file.endswith((".yaml", ".yml"))
    )
    if Path(name_or_file).is_dir() and not (directory / f"{name_or_file}.yaml").is_file():
        raise ConfigError(
            Problem("is a directory, expected a scenario file or NAME", file=name_or_file)
        )
    if looks_like_path or Path(name_or_file).is_file():
        p = Path(name_or_file)
        if p.is_file():
            return p
        if looks_like_path:
            raise ConfigError(Problem("no such scenario file", file=name_or_file))
    for ext in (".yaml", ".yml"):
        candidate = directory / f"{name_or_file}{ext}"
        if candidate.is_file():
            return candidate
    names = sorted({p.stem for p in scenario_files(directory)})
    hint = suggest(name_or_file, names)
    available = ", ".join(names) if names else "none"
    raise ConfigError(
        Problem(f"unknown scenario {name_or_file!r}{hint}; available in {directory}: {available}")
    )


def scenario_files(directory: Path) -> list[Path]:
    """The `.yaml`/`.yml` files of a directory that are scenario files: regular files that
    stay inside it. A symlink may point within the directory (a Kubernetes ConfigMap's
    `..data/` links), never out of it: `x.yaml -> /app/.env` would make the admin API read,
    and report on, a file nobody put there as a scenario."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".yaml", ".yml") and in_directory(p, directory)
    )


def in_directory(path: Path, directory: Path) -> bool:
    """`path` is a regular file whose real location (symlinks followed) is inside
    `directory`'s."""
    try:
        real = path.resolve(strict=True)
        return real.is_file() and real.is_relative_to(directory.resolve(strict=True))
    except (OSError, RuntimeError):  # gone, unreadable, a symlink loop
        return False
