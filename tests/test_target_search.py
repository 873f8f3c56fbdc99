"""--target-psnr: the search over presets (trainer.compress.search_presets, rounds of
search_probes) finds the smallest preset that reaches the target for any number of presets a
round, and a round trained in worker processes gives the same files as one trained here."""
from __future__ import annotations

import pytest

from conftest import write_set
from gltf_scenes import TEX
from trainer.compress import CompressSettings, compress, search_presets, search_probes
from trainer.fit import TrainConfig
from trainer.textures import load_texture_set


def test_probes_split_what_is_left():
    assert search_probes(0, 9, 1) == [5]
    assert search_probes(0, 9, 2) == [3, 6]
    assert search_probes(4, 5, 2) == [4, 5]
    assert search_probes(2, 2, 3) == [2]
    assert search_probes(0, 9, 16) == list(range(10))
    for lo in range(6):
        for hi in range(lo, 12):
            for ways in (1, 2, 3, 5):
                probes = search_probes(lo, hi, ways)
                assert all(lo <= i <= hi for i in probes)
                assert len(probes) == min(ways, hi - lo + 1)


@pytest.mark.parametrize("ways", [1, 2, 3, 4, 10])
def test_search_finds_the_smallest_preset_that_reaches(ways):
    psnr = [30.0 + 1.5 * i for i in range(10)]   # quality rising with bpp
    for target in (10.0, 30.0, 31.0, 37.5, 43.4, 43.5, 99.0):
        tried = []

        def measure(probes):
            assert not set(probes) & set(tried), "a preset trained twice"
            tried.extend(probes)
            return {i: psnr[i] for i in probes}
        found = search_presets(len(psnr), ways, target, measure)
        reaching = [i for i, p in enumerate(psnr) if p >= target]
        assert found == (reaching[0] if reaching else -1), (ways, target)
        if ways == 1:   # a binary search: at most ceil(log2(11)) presets
            assert len(tried) <= 4


def test_a_round_in_processes_writes_what_one_here_writes(tmp_path):
    tset = load_texture_set(write_set(tmp_path / "set", h=TEX, w=TEX))
    train = TrainConfig(steps=40, batch=256, progress=False)
    searched = compress(tset, CompressSettings(target_psnr=36.0, device="cpu", jobs=2,
                                               train=train), lambda *a: None)
    tried = searched.report["search"]
    assert len(tried) >= 2
    for t in tried:   # each preset of the search, compressed again in this process
        alone = compress(tset, CompressSettings(preset=t["preset"], device="cpu", jobs=1,
                                                train=train), lambda *a: None)
        assert alone.report["psnr_set"] == t["psnr_set"]
        if t["preset"] == searched.report["preset"]:
            assert alone.data == searched.data
    assert searched.report["preset"] in [t["preset"] for t in tried]


def test_a_search_in_this_process_reports_every_preset_step(tmp_path):
    """ntc-library's status line follows a --target-psnr task through on_step."""
    tset = load_texture_set(write_set(tmp_path / "set", h=TEX, w=TEX))
    seen = []
    result = compress(tset, CompressSettings(target_psnr=36.0, device="cpu", jobs=1,
                                             train=TrainConfig(steps=40, batch=256,
                                                               progress=False)),
                      lambda *a: None, lambda desc, step, steps, psnr: seen.append((desc, step)))
    tried = [t["preset"] for t in result.report["search"]]
    assert [d.split(" ")[0] for d, step in seen if step == 40] == tried
