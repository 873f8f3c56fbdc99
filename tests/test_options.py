"""Settings dataclasses carry their flags, checks and cache-key membership (export/options.py);
the CLIs and the cache key are derived from them."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from export.options import OptionError, add_options, at_least, from_args, option, result_fields
from trainer.compress import DEFAULT_BPP, CompressSettings, settings_from_args
from trainer.fit import TrainConfig
from trainer.network import NetworkConfig


@dataclasses.dataclass
class Demo:
    steps: int = option(100, flag="--steps", type=int, check=at_least(10), help="steps")
    name: str = option("a", flag="--name", choices=("a", "b"), help="a name")
    quiet: bool = option(False, result=False, help="not a result")
    plain: float = 1.5


def test_flags_defaults_checks_and_result_fields():
    p = argparse.ArgumentParser()
    add_options(p, Demo)
    assert "(default 100)" in p.format_help()
    assert from_args(Demo, p.parse_args([])) == Demo()
    assert from_args(Demo, p.parse_args(["--steps", "12", "--name", "b"])) == Demo(12, "b")
    with pytest.raises(OptionError, match=r"--steps 3: expected at least 10"):
        from_args(Demo, p.parse_args(["--steps", "3"]))
    with pytest.raises(SystemExit):   # a choice outside the field's: argparse's usage error
        p.parse_args(["--name", "c"])
    assert result_fields(Demo()) == {"steps": 100, "name": "a", "plain": 1.5}
    with pytest.raises(TypeError, match="no command-line flag"):
        add_options(p, Demo, ["plain"])


def test_every_compress_flag_comes_from_a_settings_field():
    from trainer import cli
    text = cli.build_parser().format_help()
    for cls in (CompressSettings, TrainConfig, NetworkConfig):
        for f in dataclasses.fields(cls):
            flag = f.metadata.get("flag")
            if flag and not (cls is NetworkConfig and f.name == "hidden"):
                assert flag in text, flag


def test_settings_from_flags_and_the_cache_key():
    s = settings_from_args(argparse.Namespace(effort="fast", steps=None, bpp=None, quiet=True))
    from trainer.budget import EFFORTS
    assert s.train.steps is None and s.train.effort == "fast" and s.train.progress is False
    assert s.train.steps_for(1024, 1024) == EFFORTS["fast"]
    assert s.effective_bpp == DEFAULT_BPP and s.bpp is None
    # what does not change the file stays out of the key: threads, progress, device
    base = CompressSettings().cache_fields()
    other = CompressSettings(train=TrainConfig(threads=2, progress=False), device="cpu")
    assert other.cache_fields() == base
    assert CompressSettings(bpp=DEFAULT_BPP).cache_fields() == base   # no --bpp is the default
    assert CompressSettings(train=TrainConfig(seed=1)).cache_fields() != base
    assert CompressSettings(train=TrainConfig(effort="max")).cache_fields() != base
    # the digest in cached bench results' names: a changed default is a new name, not a stale hit
    digest = CompressSettings().cache_digest()
    assert other.cache_digest() == digest and len(digest) == 12
    assert CompressSettings(train=TrainConfig(lr_latents=0.1)).cache_digest() != digest
    with pytest.raises(OptionError, match="--hidden"):
        settings_from_args(argparse.Namespace(hidden=(0,)))
    with pytest.raises(OptionError, match="--batch 8"):
        settings_from_args(argparse.Namespace(batch=8))


@pytest.mark.parametrize("field", ["between_share", "lod_blend_share"])
def test_every_tool_that_compresses_passes_the_sample_mode_shares_on(field):
    """--between-share and --lod-blend-share change the file: ntc-compress, ntc-view (first-open
    compression) and bench.viewer all hand them to the trainer and they enter the cache key."""
    from bench import scenes as bench_scenes, viewer as bench_viewer
    from trainer import cli as compress_cli
    from viewer import cli as view_cli
    flag = "--" + field.replace("_", "-")
    args = compress_cli.build_parser().parse_args(["in", "-o", "out.ntc", flag, "0.25"])
    assert getattr(settings_from_args(args).train, field) == 0.25
    args = view_cli.build_parser().parse_args([flag, "0.25"])
    assert getattr(settings_from_args(args).train, field) == 0.25
    args = bench_viewer.build_parser().parse_args([flag, "0.25", "--hidden", "16"])
    settings = bench_scenes.settings_for(progress=False, **vars(args))  # as its main builds them
    assert getattr(settings.train, field) == 0.25 and settings.network.hidden == (16,)
    assert getattr(bench_scenes.settings_for(steps=30).train, field) == \
        getattr(TrainConfig(), field)
    assert (CompressSettings(train=TrainConfig(**{field: 0.25})).cache_fields()
            != CompressSettings().cache_fields())
