"""Training loses no work: run-folder guard, non-finite steps, NaN-free checkpoints, save before
BatchNorm re-estimation, exact resume (also after SIGKILL), bad samples skipped or refused."""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import edge_mtl.train as train_module
from edge_mtl.checkpoint import NonFiniteError, load_model, read_checkpoint, save_checkpoint
from edge_mtl.cli import main
from edge_mtl.config import Config
from edge_mtl.train import TrainingDiverged, train
from tests.helpers import tiny_config, tiny_model_config


def steps_in_log(run: Path) -> list[int]:
    with open(run / "log.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def max_weight_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def interrupt_at_call(monkeypatch, n: int, error: type[BaseException] = KeyboardInterrupt) -> None:
    """The ``n``-th loss computation raises ``error`` (a run stopped mid-way)."""
    real, calls = train_module.compute_losses, [0]

    def flaky(*args, **kw):
        calls[0] += 1
        if calls[0] == n:
            raise error("stopped by the test")
        return real(*args, **kw)

    monkeypatch.setattr(train_module, "compute_losses", flaky)


def test_an_existing_run_folder_is_refused_without_resume_or_force(tmp_path, tiny_dataset, capsys):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=2)
    train(cfg, progress=False)
    run = tmp_path / "run"
    before = {name: (run / name).read_bytes() for name in ("last.pt", "log.csv", "config.yaml")}
    cfg.save(tmp_path / "tiny.yaml")
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--set", "train.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--force" in err
    assert {name: (run / name).read_bytes() for name in before} == before  # nothing touched
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--force"]) == 0
    assert steps_in_log(run) == [1, 2]


class NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize("broken", ["loss", "gradient"])
def test_a_non_finite_step_is_skipped_and_keeps_the_weights(tmp_path, tiny_dataset, monkeypatch, capsys,
                                                            broken):
    real, real_build = train_module.compute_losses, train_module.build_model
    calls, models = [0], []
    monkeypatch.setattr(train_module, "build_model", lambda c: models.append(real_build(c)) or models[-1])

    def nan_on_second(*args, **kw):
        calls[0] += 1
        losses = real(*args, **kw)
        if calls[0] == 2:
            det = losses["det"]
            losses["det"] = det * float("nan") if broken == "loss" else NanGradient.apply(det)
            # NaN activations reach the BatchNorm statistics in such a forward
            models[0].backbone.features[0][1].running_mean.data.fill_(float("nan"))
        return losses

    monkeypatch.setattr(train_module, "compute_losses", nan_on_second)
    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=3)
    state = read_checkpoint(train(cfg, progress=False))
    assert state["step"] == 3 and state["bad_steps"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        assert [r["bad_steps"] for r in csv.DictReader(f)] == ["0", "1", "1"]
    assert "step 2: non-finite loss or gradient" in capsys.readouterr().err


def test_a_run_of_non_finite_steps_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_dataset,
                                                                             monkeypatch):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=10)
    cfg.train.ckpt_every, cfg.train.max_bad_steps = 2, 3
    real = train_module.compute_losses
    calls = [0]

    def nan_after_three(*args, **kw):
        calls[0] += 1
        losses = real(*args, **kw)
        return {k: v * float("nan") for k, v in losses.items()} if calls[0] > 3 else losses

    monkeypatch.setattr(train_module, "compute_losses", nan_after_three)
    with pytest.raises(TrainingDiverged, match=r"step 6: 3 steps in a row .* last good weights \(step 4\)"):
        train(cfg, progress=False)
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == 4 and state["bad_steps"] == 1  # step 4 skipped: the weights of step 3
    load_model(tmp_path / "run" / "last.pt")  # finite, loads


def test_no_checkpoint_is_written_with_nan_and_eval_refuses_one(tmp_path, tiny_dataset, capsys):
    from edge_mtl.model.tritask import build_model

    cfg = Config(model=tiny_model_config())
    model = build_model(cfg.model)
    good = save_checkpoint(tmp_path / "m.pt", cfg, model, step=1)
    before = good.read_bytes()
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=r"m\.pt: not written"):
        save_checkpoint(good, cfg, model, step=2)
    assert good.read_bytes() == before and not list(tmp_path.glob("*.tmp"))
    payload = torch.load(good, weights_only=True)
    bias = payload["model"]["det_head.cls_outs.0.bias"]
    payload["model"]["det_head.cls_outs.0.bias"] = torch.full_like(bias, float("inf"))
    torch.save(payload, tmp_path / "nan.pt")  # written around the check, as another tool might
    assert main(["eval", str(tmp_path / "nan.pt"), "--data", tiny_dataset]) == 2
    err = capsys.readouterr().err
    assert "nan.pt" in err and "NaN or inf" in err and "Traceback" not in err


def test_a_failing_bn_reestimation_leaves_the_trained_checkpoint_and_resume_finishes(tmp_path, tiny_dataset,
                                                                                       monkeypatch):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=3)
    cfg.train.ckpt_every, cfg.train.bn_batches = 100, 2

    def broken(*args, **kw):
        raise OSError("disk went away during BN re-estimation")

    monkeypatch.setattr(train_module, "recalibrate_bn", broken)
    with pytest.raises(OSError, match="disk went away"):
        train(cfg, progress=False)
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == 3 and state["bn_recalibrated"] is False
    monkeypatch.undo()
    done = read_checkpoint(train(cfg, resume=str(tmp_path / "run" / "last.pt"), progress=False))
    assert done["bn_recalibrated"] is True and done["step"] == 3
    assert steps_in_log(tmp_path / "run") == [1, 2, 3]


def test_resume_is_exact_and_the_log_has_no_duplicate_rows(tmp_path, tiny_dataset, monkeypatch):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "a"), steps=5)
    cfg.train.crop_width, cfg.train.bn_batches = 64, 2  # augmentation and BN re-estimation on
    uninterrupted = read_checkpoint(train(cfg, progress=False))
    cfg.train.out = str(tmp_path / "b")
    interrupt_at_call(monkeypatch, 4)  # during step 4; last checkpoint at step 2, log rows to 3
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.undo()
    mid = read_checkpoint(tmp_path / "b" / "last.pt")
    assert mid["step"] == 2 and steps_in_log(tmp_path / "b") == [1, 2, 3]
    resumed = read_checkpoint(train(cfg, resume=str(tmp_path / "b" / "last.pt"), progress=False))
    assert steps_in_log(tmp_path / "b") == [1, 2, 3, 4, 5]
    assert max_weight_diff(mid["model"], resumed["model"]) > 1e-4  # it trained on
    assert max_weight_diff(uninterrupted["model"], resumed["model"]) < 1e-5


def test_resume_after_sigkill_at_a_random_moment_is_exact(tmp_path, tiny_dataset):
    """A real `edge-mtl train` process killed anywhere between its first checkpoint and its end
    (mid-step, mid-save, during BatchNorm re-estimation), then resumed."""
    cfg = tiny_config(tiny_dataset, str(tmp_path / "ref"), steps=12)
    cfg.train.ckpt_every, cfg.train.crop_width, cfg.train.bn_batches = 1, 64, 2
    reference = read_checkpoint(train(cfg, progress=False))
    cfg.train.out = str(tmp_path / "killed")
    cfg.save(tmp_path / "tiny.yaml")
    cmd = [sys.executable, "-m", "edge_mtl.cli", "train", "--config", str(tmp_path / "tiny.yaml")]
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    kill_after = rng.randint(1, 12)  # log rows; after row 12 the run saves and re-estimates BN
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log, first = tmp_path / "killed" / "log.csv", tmp_path / "killed" / "last.pt"
    deadline = time.monotonic() + 120
    # the child's own progress picks the moment (its speed varies with the machine's load); the
    # log row of a step is written before its checkpoint, so wait for the first checkpoint too
    while proc.poll() is None and time.monotonic() < deadline and \
            (not log.exists() or len(log.read_text().splitlines()) < 1 + kill_after or not first.exists()):
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.05))  # anywhere in the next step (or the final save and BN)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run (seed {seed}): {err.decode()[-2000:]}"
    last = tmp_path / "killed" / "last.pt"
    assert main(["train", "--resume", str(last)]) == 0
    resumed = read_checkpoint(last)
    assert resumed["step"] == 12 and resumed["bn_recalibrated"]
    assert max_weight_diff(reference["model"], resumed["model"]) < 1e-4
    assert steps_in_log(tmp_path / "killed") == list(range(1, 13))


@pytest.fixture()
def damaged_dataset(tmp_path, tiny_dataset) -> Path:
    """A copy of the tiny dataset with one truncated JPEG (sample 1) and one 0/255 lane mask (3)."""
    root = tmp_path / "damaged"
    shutil.copytree(tiny_dataset, root)
    jpg = root / "images" / "000001.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    import cv2

    lane = cv2.imread(str(root / "lanes" / "000003.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(root / "lanes" / "000003.png"), lane * 255)
    return root


def test_training_skips_bad_samples_and_reports_them(tmp_path, damaged_dataset, capsys):
    import json

    cfg = tiny_config(str(damaged_dataset), str(tmp_path / "run"), steps=2)
    train(cfg, progress=False)
    err = capsys.readouterr().err
    assert "000001.jpg: truncated JPEG" in err and "4 of 6 samples readable, 2 bad" in err
    report = json.loads((tmp_path / "run" / "data_check.json").read_text())
    assert report["num_bad"] == 2
    assert sorted(Path(p["file"]).name for p in report["bad"]) == ["000001.json", "000003.json"]


def test_unchecked_training_skips_bad_samples_when_a_batch_meets_them(tmp_path, damaged_dataset):
    """``train.check_data: false`` reads nothing first (data checked before); a bad sample met
    later is skipped all the same, and the report says the data was not checked."""
    import dataclasses
    import json

    from edge_mtl.data.checks import DatasetError
    from edge_mtl.data.preflight import unchecked

    cfg = tiny_config(str(damaged_dataset), str(tmp_path / "run"), steps=3)
    cfg.train = dataclasses.replace(cfg.train, check_data=False)
    train(cfg, progress=False)
    report = json.loads((tmp_path / "run" / "data_check.json").read_text())
    assert report["datasets"][0]["checked"] is False and report["num_bad"] == 0
    assert (tmp_path / "run" / "last.pt").is_file()
    bare = tmp_path / "bare"
    for sub in ("images", "labels"):
        (bare / sub).mkdir(parents=True)
    (bare / "meta.json").write_text((damaged_dataset / "meta.json").read_text())
    with pytest.raises(DatasetError, match=r"bare.*(no label files|holds no samples)"):
        unchecked(str(bare))


def test_strict_training_stops_at_the_first_bad_sample_before_writing(tmp_path, damaged_dataset, capsys):
    cfg = tiny_config(str(damaged_dataset), str(tmp_path / "run"), steps=2)
    cfg.save(tmp_path / "tiny.yaml")
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--strict"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("edge-mtl train: error: ") and "000001.jpg: truncated JPEG" in last
    assert not (tmp_path / "run").exists()


def test_resume_goes_on_in_the_run_folder_unless_out_is_given(tmp_path, tiny_dataset):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "a"), steps=2)
    cfg.save(tmp_path / "tiny.yaml")  # its train.out is run a
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "b")]) == 0
    resume = str(tmp_path / "b" / "last.pt")
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--resume", resume, "--steps", "3"]) == 0
    assert read_checkpoint(tmp_path / "b" / "last.pt")["step"] == 3 and not (tmp_path / "a").exists()
    assert steps_in_log(tmp_path / "b") == [1, 2, 3]


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["EDGE_MTL_TEST_MARKER"]),))


def test_a_checkpoint_holding_pickled_code_is_refused_without_running_it(tmp_path, tiny_dataset, monkeypatch,
                                                                         capsys):
    marker = tmp_path / "code_ran"
    monkeypatch.setenv("EDGE_MTL_TEST_MARKER", str(marker))
    torch.save({"format": "edge_mtl.ckpt/1", "config": {}, "model": {}, "payload": _RunsCode()},
               tmp_path / "evil.pt")
    assert main(["eval", str(tmp_path / "evil.pt"), "--data", tiny_dataset]) == 2
    assert "evil.pt: not a readable checkpoint" in capsys.readouterr().err
    assert not marker.exists()


def test_a_failed_or_killed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from edge_mtl.model.tritask import build_model

    cfg = Config(model=tiny_model_config())
    model = build_model(cfg.model)
    path = save_checkpoint(tmp_path / "last.pt", cfg, model, step=1)
    before = path.read_bytes()
    (tmp_path / "last.pt.tmp").write_bytes(before[:100])  # what a SIGKILL mid-save leaves
    assert read_checkpoint(path)["step"] == 1

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    import edge_mtl.files

    monkeypatch.setattr(edge_mtl.files.os, "fsync", disk_full)  # after a partial write
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, cfg, model, step=2)
    assert path.read_bytes() == before and not (tmp_path / "last.pt.tmp").exists()
    monkeypatch.undo()
    assert read_checkpoint(save_checkpoint(path, cfg, model, step=3))["step"] == 3


def test_a_sample_that_breaks_after_the_check_is_dropped_from_its_batch_and_listed(tmp_path, damaged_dataset,
                                                                                   monkeypatch):
    import json

    from edge_mtl.data.preflight import DataCheck

    # The check ran before the files broke: every sample looked good then.
    monkeypatch.setattr(train_module, "check_dataset",
                        lambda root, **kw: DataCheck(str(root), 6, good=list(range(6))))
    cfg = tiny_config(str(damaged_dataset), str(tmp_path / "run"), steps=6)
    assert read_checkpoint(train(cfg, progress=False))["step"] == 6
    report = json.loads((tmp_path / "run" / "data_check.json").read_text())
    names = {Path(p["file"]).name for p in report["skipped_in_training"]}
    assert names == {"000001.json", "000003.json"}  # 6 steps of 2 cover the 6 samples twice


def test_resume_takes_the_runs_own_config_and_refuses_a_release_file(tmp_path, tiny_dataset, capsys):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=2)
    cfg.save(tmp_path / "tiny.yaml")
    assert main(["train", "--config", str(tmp_path / "tiny.yaml")]) == 0
    last = str(tmp_path / "run" / "last.pt")
    # No --config: the tiny network of the checkpoint, not the default config's full-size one.
    assert main(["train", "--resume", last, "--steps", "3"]) == 0
    assert read_checkpoint(last)["step"] == 3
    assert main(["release", last, "--out", str(tmp_path / "small.pt")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "small.pt"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "small.pt: holds no training state" in err and "--set train.init=" in err


def test_force_does_not_leave_the_old_weights_to_be_resumed(tmp_path, tiny_dataset, monkeypatch):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=2)
    train(cfg, progress=False)
    interrupt_at_call(monkeypatch, 1)  # the forced run stops before its first save
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, force=True)
    assert not (tmp_path / "run" / "last.pt").exists() and steps_in_log(tmp_path / "run") == []


def test_data_that_breaks_entirely_mid_run_stops_with_an_error_not_a_loop(tmp_path, tiny_dataset,
                                                                           monkeypatch):
    from edge_mtl.data.format import DatasetError
    from edge_mtl.data.preflight import DataCheck

    root = tmp_path / "gone"
    shutil.copytree(tiny_dataset, root)
    for jpg in (root / "images").glob("*.jpg"):
        jpg.write_bytes(b"")  # the disk went away after the check
    monkeypatch.setattr(train_module, "check_dataset",
                        lambda r, **kw: DataCheck(str(r), 6, good=list(range(6))))
    cfg = tiny_config(str(root), str(tmp_path / "run"), steps=3)
    with pytest.raises(DatasetError, match="no sample could be read for a whole pass"):
        train(cfg, progress=False)


def test_bn_reestimation_that_reads_no_batch_is_an_error_and_keeps_the_statistics(tmp_path, tiny_dataset):
    from edge_mtl.data.dataset import MultiTaskDataset
    from edge_mtl.data.format import DatasetError
    from edge_mtl.model.tritask import build_model
    from edge_mtl.train import recalibrate_bn
    from tests.helpers import TINY_SIZE

    root = tmp_path / "gone"
    shutil.copytree(tiny_dataset, root)
    for jpg in (root / "images").glob("*.jpg"):
        jpg.write_bytes(jpg.read_bytes()[:100])
    model = build_model(tiny_model_config()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DatasetError, match=r"BatchNorm re-estimation read no batch; first: .*truncated JPEG"):
        recalibrate_bn(model, MultiTaskDataset(str(root), TINY_SIZE, skip_bad=True), batches=2, batch_size=2,
                       device=torch.device("cpu"))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_resuming_into_another_folder_keeps_none_of_its_rows(tmp_path, tiny_dataset):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "a"), steps=2)
    train(cfg, progress=False)
    cfg.train.out, cfg.train.steps = str(tmp_path / "b"), 4
    train(cfg, progress=False)
    cfg.train.steps = 3
    train(cfg, resume=str(tmp_path / "a" / "last.pt"), progress=False, force=True)
    assert steps_in_log(tmp_path / "b") == [3]  # b's own rows 1-4 belong to another run


def test_resuming_mid_epoch_with_another_batch_size_is_refused(tmp_path, tiny_dataset, monkeypatch):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=6)
    interrupt_at_call(monkeypatch, 2)  # stopped in step 2, after step 1 was saved
    cfg.train.ckpt_every = 1
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.undo()
    cfg.train.batch_size = 3
    with pytest.raises(ValueError, match=r"stopped mid-epoch with batch_size 2 .* not batch_size 3"):
        train(cfg, resume=str(tmp_path / "run" / "last.pt"), progress=False)
