"""Training end to end on tiny data: checkpoints, resume, logs, eval JSON, CLI, DDP."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from edge_mtl.checkpoint import load_model, read_checkpoint, release
from edge_mtl.cli import main
from edge_mtl.evaluate import SCHEMA, evaluate
from edge_mtl.train import lr_factor, train
from tests.helpers import tiny_config


def read_log(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_resume_and_evaluate(tmp_path, dropped_dataset):
    cfg = tiny_config(dropped_dataset, str(tmp_path / "run"), steps=3)
    ckpt = train(cfg, progress=False)
    state = read_checkpoint(ckpt)
    assert state["step"] == 3
    rows = read_log(tmp_path / "run" / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert (tmp_path / "run" / "log.png").stat().st_size > 0

    cfg.train.steps = 5
    ckpt = train(cfg, resume=str(ckpt), progress=False)
    resumed = read_checkpoint(ckpt)
    assert resumed["step"] == 5
    rows = read_log(tmp_path / "run" / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert any(not torch.equal(state["model"][k], resumed["model"][k]) for k in state["model"])

    small = release(ckpt, tmp_path / "release.pt")
    assert small.stat().st_size < ckpt.stat().st_size
    _, model = load_model(small)
    assert not model.training

    result = evaluate(small, dropped_dataset, progress=False)
    assert result["schema"] == SCHEMA
    labelled = result["data"]["labelled"]
    assert result["data"]["num_samples"] == 8 and 0 < labelled["det"] < 8
    assert set(result["metrics"]) == {"det", "lane", "depth"}
    assert 0.0 <= result["metrics"]["lane"]["iou"] <= 1.0
    assert result["metrics"]["depth"]["abs_rel"] > 0


def test_lr_schedule_warms_up_then_decays():
    factors = [lr_factor(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[-1] == pytest.approx(0.05, abs=0.01)


def test_cli_synth_and_clear_errors(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "d"), "--num", "2", "--seed", "3", "--workers", "1"]) == 0
    assert (tmp_path / "d" / "meta.json").is_file()
    assert main(["synth", "--out", str(tmp_path / "e"), "--num", "2", "--drop-labels", "lane=2"]) == 2
    assert "lane=2.0 must lie in [0, 1]" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.pt"), "--data", str(tmp_path / "d")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint")
    assert main(["eval", str(bogus), "--data", str(tmp_path / "d")]) == 2
    assert "bogus.pt" in capsys.readouterr().err


def test_cli_train_then_eval_json(tmp_path, tiny_dataset):
    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=2)
    cfg.save(tmp_path / "tiny.yaml")
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--set", "train.log_every=5"]) == 0
    out = tmp_path / "eval.json"
    assert main(["eval", str(tmp_path / "run" / "last.pt"), "--data", tiny_dataset,
                 "--json", str(out), "--limit", "3"]) == 0
    result = json.loads(out.read_text())
    assert result["data"]["num_samples"] == 3 and result["input_size"] == [64, 128]


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path, tiny_dataset):
    """torchrun + DistributedDataParallel over gloo: both ranks step, rank 0 writes."""
    cfg = tiny_config(tiny_dataset, str(tmp_path / "ddp"), steps=2)
    cfg.save(tmp_path / "tiny.yaml")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "edge_mtl.cli", "train", "--config", str(tmp_path / "tiny.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = read_checkpoint(tmp_path / "ddp" / "last.pt")
    assert state["step"] == 2
    # The weighting sits outside DDP (its gradients are all-reduced by hand); warmup ended
    # after step 1, so its log-variances have moved.
    assert any(float(v) != 0.0 for v in state["weighting"].values())


def test_recalibrate_bn_sets_running_stats_to_the_data(tiny_dataset):
    from edge_mtl.data.dataset import MultiTaskDataset, collate
    from edge_mtl.model.tritask import build_model
    from edge_mtl.train import recalibrate_bn
    from tests.helpers import TINY_SIZE, tiny_model_config

    model = build_model(tiny_model_config()).eval()
    first_bn = model.backbone.features[0][1]
    first_bn.running_mean.fill_(100.0)  # stale statistics, as after a short run
    recalibrate_bn(model, MultiTaskDataset(tiny_dataset, TINY_SIZE), batches=3, batch_size=2,
                   device=torch.device("cpu"))
    assert not model.training  # mode restored
    images = collate([MultiTaskDataset(tiny_dataset, TINY_SIZE)[i] for i in range(6)]).image
    with torch.no_grad():
        conv_out = model.backbone.features[0][0](images)
    expected = conv_out.mean((0, 2, 3))
    assert torch.allclose(first_bn.running_mean, expected, atol=1e-4)


def test_init_from_keeps_matching_weights_and_refreshes_the_rest(tiny_checkpoint):
    from edge_mtl.checkpoint import load_model
    from edge_mtl.model.tritask import build_model
    from edge_mtl.train import init_from
    from tests.helpers import tiny_model_config

    _, source = load_model(tiny_checkpoint)
    model = build_model(tiny_model_config(lane_stride=2))
    fresh = init_from(model, tiny_checkpoint)
    assert fresh and all(k.startswith("lane_head.") for k in fresh)  # only the lane head differs
    src = source.state_dict()
    assert all(torch.equal(v, src[k].to(v.dtype)) for k, v in model.state_dict().items()
               if k not in fresh)
    other = build_model(tiny_model_config(seg_channels=4))
    fresh = init_from(other, tiny_checkpoint)
    assert fresh and all(k.startswith(("decoder.", "lane_head.", "depth_head.")) for k in fresh)


def test_checkpoint_written_before_lane_stride_loads_with_the_stride_2_head(tmp_path):
    from edge_mtl.checkpoint import save_checkpoint
    from edge_mtl.config import Config
    from edge_mtl.model.tritask import build_model
    from tests.helpers import tiny_model_config

    cfg = Config(model=tiny_model_config(lane_stride=2))
    path = save_checkpoint(tmp_path / "old.pt", cfg, build_model(cfg.model))
    payload = torch.load(path, weights_only=True)
    del payload["config"]["model"]["lane_stride"]  # as the first release wrote it
    torch.save(payload, path)
    loaded_cfg, model = load_model(path)
    assert loaded_cfg.model.lane_stride == 2 and model.lane_head.stride == 2
    payload["config"]["model"]["lane_stride"] = 4  # weights of one head, config of the other
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"old\.pt: its weights do not fit .*train\.init="):
        load_model(path)


def test_the_shipped_checkpoint_loads_with_its_own_config():
    from edge_mtl.paths import DEFAULT_CHECKPOINT

    cfg, model = load_model(DEFAULT_CHECKPOINT)
    assert cfg.model.lane_stride == 4
    with torch.no_grad():
        out = model(torch.zeros(1, 3, cfg.model.input_height, cfg.model.input_width))
    assert out["lane_logits"].shape[-2:] == (cfg.model.input_height // 2, cfg.model.input_width // 2)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_amp_cpu_trains_in_bfloat16_only_where_the_cpu_computes_it(tmp_path, tiny_dataset,
                                                                    monkeypatch, capsys):
    """train.amp_cpu: bfloat16 autocast on channels-last tensors where the CPU has bfloat16
    arithmetic; elsewhere a note, and exactly the float32 run."""
    import edge_mtl.train as training

    def run(name: str, amp_cpu: bool) -> dict:
        cfg = tiny_config(tiny_dataset, str(tmp_path / name), steps=2)
        cfg.train.amp_cpu = amp_cpu
        return read_checkpoint(train(cfg, progress=False))["model"]

    plain = run("fp32", False)
    monkeypatch.setattr(training, "cpu_computes_bf16", lambda: False)
    emulated = run("emulated", True)
    assert "no native bfloat16" in capsys.readouterr().err
    assert all(torch.equal(emulated[k], v) for k, v in plain.items())
    monkeypatch.setattr(training, "cpu_computes_bf16", lambda: True)
    native = run("bf16", True)
    convs = [k for k, v in native.items() if v.ndim == 4 and v.shape[-1] > 1]
    assert convs and all(native[k].is_contiguous(memory_format=torch.channels_last) for k in convs)
    assert all(torch.isfinite(v).all() for v in native.values() if v.is_floating_point())
    assert any(not torch.equal(native[k], v) for k, v in plain.items())  # bfloat16 arithmetic


def test_frozen_backbone_blocks_keep_weights_and_statistics(tiny_dataset):
    from edge_mtl.data.dataset import MultiTaskDataset, collate
    from edge_mtl.model.tritask import build_model
    from edge_mtl.train import recalibrate_bn
    from tests.helpers import TINY_SIZE, tiny_model_config

    model = build_model(tiny_model_config(freeze_backbone=4)).train()
    frozen, free = model.backbone.features[:4], model.backbone.features[4:]
    assert not any(m.training for layer in frozen for m in layer.modules())
    assert all(m.training for layer in free for m in layer.modules())
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    free_before = {k: v.clone() for k, v in free.state_dict().items()}
    images = collate([MultiTaskDataset(tiny_dataset, TINY_SIZE)[i] for i in range(4)]).image
    outputs = model(images)
    sum(v.float().mean() for v in outputs.values()).backward()
    assert all(p.grad is None for p in frozen.parameters())
    assert all(p.grad is not None for p in free.parameters())
    recalibrate_bn(model, MultiTaskDataset(tiny_dataset, TINY_SIZE), batches=2, batch_size=2,
                   device=torch.device("cpu"))
    assert all(torch.equal(v, before[k]) for k, v in frozen.state_dict().items())
    moved = [k for k, v in free.state_dict().items()
             if "running_mean" in k and not torch.equal(v, free_before[k])]
    assert moved  # the trainable blocks' statistics were re-estimated
    with pytest.raises(ValueError, match="freeze_backbone=99"):
        build_model(tiny_model_config(freeze_backbone=99))


@pytest.mark.parametrize(("strategy", "gradients"), [("nash_mtl", "representation"), ("pcgrad", "parameters"),
                                                     ("famo", "representation")])
def test_train_with_any_strategy_logs_weights_and_gradient_diagnostics(tmp_path, dropped_dataset,
                                                                      strategy, gradients):
    """Warmup then the strategy, on data with missing labels; every row carries the step time,
    diagnostic rows the per-task gradient norms and cosines; a resume carries the strategy's state."""
    cfg = tiny_config(dropped_dataset, str(tmp_path / "run"), steps=4)
    cfg.weighting.strategy, cfg.weighting.gradients = strategy, gradients
    cfg.train.diag_every = 2
    ckpt = train(cfg, progress=False)
    rows = read_log(tmp_path / "run" / "log.csv")
    assert all(float(r["step_ms"]) > 0 for r in rows)
    diag = [r for r in rows if int(r["step"]) % 2 == 0]
    assert diag and all(float(r[f"gnorm_{t}"]) > 0 for r in diag for t in ("det", "lane", "depth")
                        if r[f"loss_{t}"])
    cosines = [float(r[k]) for r in diag for k in r if k.startswith("cos_") and r[k] not in ("", "nan")]
    assert cosines and all(-1.0 <= c <= 1.0 for c in cosines)
    assert [r for r in rows if int(r["step"]) % 2] and all(
        not r["gnorm_det"] for r in rows if int(r["step"]) % 2)
    weights = [float(rows[-1][f"weight_{t}"]) for t in ("det", "lane", "depth")]
    assert all(math.isfinite(w) for w in weights)
    if strategy != "pcgrad":  # (PCGrad's weights stay 1 while no pair conflicts)
        assert weights != [1.0, 1.0, 1.0]  # the strategy acted
    state = read_checkpoint(ckpt)
    cfg.train.steps = 5
    resumed = read_checkpoint(train(cfg, resume=str(ckpt), progress=False))
    assert resumed["step"] == 5 and set(resumed["weighting"]) == set(state["weighting"])


def test_tensorboard_mirrors_the_log_when_installed(tmp_path, tiny_dataset):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tiny_dataset, str(tmp_path / "run"), steps=2)
    cfg.train.diag_every = 1
    train(cfg, progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/loss_det", "weight/weight_lane", "gnorm/gnorm_depth", "step/step_ms"} <= tags
    assert [e.step for e in events.Scalars("loss/loss_det")] == [1, 2]
    off = tiny_config(tiny_dataset, str(tmp_path / "off"), steps=1)
    off.train.tensorboard = False
    train(off, progress=False)
    assert not (tmp_path / "off" / "tb").exists()


def test_batches_without_a_trained_task_are_passed_over_not_fatal(tmp_path):
    """train.tasks=[det] on data where det is often missing: such batches take no step; data
    with no det label at all stops after one pass, naming the tasks."""
    from edge_mtl.data.format import DatasetError, synthesize

    some = synthesize(tmp_path / "some", 8, seed=3, drop={"det": 0.6}, workers=1, progress=False)
    cfg = tiny_config(str(some), str(tmp_path / "run"), steps=4)
    cfg.train.tasks = ["det"]
    state = read_checkpoint(train(cfg, progress=False))
    assert state["step"] == 4
    assert next(iter(state["seen"].values()))[0] > 4 * 2  # batches were read that took no step
    rows = read_log(tmp_path / "run" / "log.csv")
    assert all(r["loss_det"] and not r["loss_lane"] and not r["loss_depth"] for r in rows)
    none = synthesize(tmp_path / "none", 4, seed=3, drop={"det": 1.0}, workers=1, progress=False)
    cfg = tiny_config(str(none), str(tmp_path / "run2"), steps=3)
    cfg.train.tasks = ["det"]
    with pytest.raises(DatasetError, match=r"no batch held a label of train.tasks=\['det'\]"):
        train(cfg, progress=False)
