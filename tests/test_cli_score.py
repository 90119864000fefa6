"""The ``aigc-reward`` command line: score files, folders and manifests; list rewards; clear errors."""
from __future__ import annotations

import json

import pytest
from scoring_videos import write_corrupt, write_mp4

import reward
from reward.cli import main, weights_argument
from reward.errors import ScoringInputError
from reward.scoring import read_records
from reward.video.io import read_video


def _json_run(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_scores_an_mp4_written_by_the_test(tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4")
    result = _json_run(capsys, ["score", str(video), "--reward", "colorfulness", "--json", "--num-workers", "0", "--no-progress"])
    expected = reward.load("colorfulness").score(read_video(video)[None]).score.item()
    assert result["results"][0]["score"] == pytest.approx(expected, rel=1e-6)
    assert result["summary"]["scored"] == 1 and result["summary"]["failed"] == 0


def test_cli_table_shows_every_component_the_summary_and_the_failures(tmp_path, capsys):
    write_mp4(tmp_path / "v" / "a.mp4")
    write_corrupt(tmp_path / "v" / "b.mp4")
    assert main(["score", str(tmp_path / "v"), "--reward", "brightness", "--num-workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("id"))
    assert header.split() == ["id", "score", "brightness", "error"]
    assert "videos: 2  scored: 1  failed: 1" in out
    assert f"{tmp_path / 'v' / 'b.mp4'}: VideoReadError" in out


def test_cli_manifest_run_appends_json_and_csv_and_resumes(tmp_path, capsys):
    for name in ("a", "b"):
        write_mp4(tmp_path / f"{name}.mp4", seed=ord(name))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"path": f"{n}.mp4", "prompt": f"clip {n}", "id": n}) + "\n" for n in "ab"))
    argv = ["score", "--manifest", str(manifest), "--reward", "brightness", "--out", str(tmp_path / "r.jsonl"),
            "--csv", str(tmp_path / "r.csv"), "--num-workers", "0", "--no-progress", "--json"]
    first = _json_run(capsys, argv)
    assert [(r["id"], r["prompt"]) for r in first["results"]] == [("a", "clip a"), ("b", "clip b")]
    assert read_records(tmp_path / "r.jsonl") == read_records(tmp_path / "r.csv") == first["results"]
    assert main(argv) == 2
    assert "pass --resume" in capsys.readouterr().err
    again = _json_run(capsys, argv + ["--resume"])
    assert again["results"] == first["results"] and again["summary"]["resumed"] == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reward", "no-such-reward"], "unknown reward 'no-such-reward'"),
        (["--reward", "brightness", "--manifest", "MANIFEST"], "line 2: not valid JSON"),
        (["--reward", "brightness"], "give VIDEO files"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys, extra, message):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.mp4"}\n{oops\n')
    argv = ["score", *[str(manifest) if e == "MANIFEST" else e for e in extra]]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_list_shows_rewards_with_metadata(capsys):
    assert main(["list"]) == 0
    assert "colorfulness" in capsys.readouterr().out
    listed = _json_run(capsys, ["list", "--json"])
    entry = next(e for e in listed if e["name"] == "brightness")
    assert entry["components"] == ["brightness"] and entry["score_range"] == [0.0, 1.0]


def test_cli_gives_each_video_its_prompt_from_a_prompts_file(tmp_path, capsys):
    model = reward.load("imagereward-tiny", pretrained=False)
    model.save_pretrained(tmp_path / "weights")
    videos = [write_mp4(tmp_path / f"{i}.mp4", seed=i) for i in range(2)]
    prompts = ["a red fox running through fresh snow", "a cat"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    base = ["score", *map(str, videos), "--reward", "imagereward-tiny", "--num-workers", "0", "--no-progress"]
    assert main(base + ["--random-weights"]) == 2
    assert "needs a prompt per video" in capsys.readouterr().err
    result = _json_run(capsys, base + ["--weights", str(tmp_path / "weights"), "--prompts-file", str(tmp_path / "prompts.txt"), "--json"])
    for record, video, prompt in zip(result["results"], videos, prompts):
        assert record["prompt"] == prompt
        assert record["score"] == pytest.approx(model.score(read_video(video)[None], [prompt]).score.item(), abs=1e-6)


def test_weights_argument_is_one_source_or_named_parts(tmp_path):
    odd = tmp_path / "a=b.pth"
    odd.write_bytes(b"")
    assert weights_argument(None) is None
    assert weights_argument(["DOVER.pth"]) == "DOVER.pth"
    assert weights_argument([str(odd)]) == str(odd)
    assert weights_argument(["dover=D.pth", "imagereward=owner/repo"]) == {"dover": "D.pth", "imagereward": "owner/repo"}
    with pytest.raises(ScoringInputError, match="name every part"):
        weights_argument(["dover=D.pth", "I.pt"])
    with pytest.raises(ScoringInputError, match="without KEY=SOURCE"):
        weights_argument(["D.pth", "I.pt"])
