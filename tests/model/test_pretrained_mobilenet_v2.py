"""The shipped ImageNet MobileNetV2 backbone weights and apps/convert_tflite_mobilenet_v2.py."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from edge_mtl.config import ModelConfig
from edge_mtl.model.backbone import PRETRAINED_META_KEY
from edge_mtl.model.tritask import build_model
from tests.helpers import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "mobilenet_v2_imagenet.pt"
TFLITE = SHARED_DATA / "pretrained" / "mobilenet_v2_1.0_224_quant.tflite"


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("convert_tflite_mobilenet_v2",
                                                  ROOT / "apps" / "convert_tflite_mobilenet_v2.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_shipped_weights_load_through_model_pretrained_and_replace_the_init(app):
    assert app.META_KEY == PRETRAINED_META_KEY
    torch.manual_seed(0)
    fresh = build_model(ModelConfig(backbone="mobilenet_v2", tf_padding=True))
    model = build_model(ModelConfig(backbone="mobilenet_v2", pretrained=str(SHIPPED), tf_padding=True))
    shipped = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    meta = shipped.pop(PRETRAINED_META_KEY)
    assert meta["tf_padding"] is True and meta["input"] == "imagenet" and meta["bn_images"] > 0
    assert shipped and all(k.startswith("features.") for k in shipped)
    mine = model.backbone.state_dict()
    assert set(mine) == set(shipped)  # every features.* key, nothing else
    for k, v in shipped.items():
        assert mine[k].dtype == (torch.long if k.endswith("num_batches_tracked") else torch.float32)
        assert torch.equal(mine[k], v.to(mine[k].dtype)), k
    assert not torch.equal(mine["features.0.0.weight"], fresh.backbone.state_dict()["features.0.0.weight"])
    # Each BatchNorm holds its input's statistics (mean m, variance v) as weight sqrt(v + eps),
    # bias m + b, so that in eval mode it is still identity + the folded bias b.
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 52
    for bn in bns:
        bn.eval()
        torch.testing.assert_close(bn.weight, torch.sqrt(bn.running_var + bn.eps), rtol=1e-6, atol=0)
        x = torch.randn(2, bn.num_features, 5, 7)
        b = (bn.bias - bn.running_mean).detach().view(1, -1, 1, 1)
        torch.testing.assert_close(bn(x), x + b, rtol=0, atol=1e-5 * (1 + bn.running_mean.abs().max().item()))
    assert sum(bool((bn.running_mean != 0).any()) for bn in bns) == 52  # statistics, not identity
    assert shipped["features.0.1.bias"].dtype == torch.float32
    assert shipped["features.0.0.weight"].dtype == torch.float16
    assert SHIPPED.stat().st_size < 6e6
    with pytest.warns(UserWarning, match="model.tf_padding=true"):  # the file says what it expects
        build_model(ModelConfig(backbone="mobilenet_v2", pretrained=str(SHIPPED)))


def test_dequantize_per_tensor_and_per_channel(app):
    t = app.Tensor(0, "w", (2, 1, 1, 2), np.uint8, np.array([0, 128, 255, 130], np.uint8).reshape(2, 1, 1, 2),
                   np.array([0.5], np.float32), np.array([128]))
    np.testing.assert_array_equal(app.dequantize(t).ravel(), [-64.0, 0.0, 63.5, 1.0])
    # int8, per output channel (axis 0), symmetric
    t = app.Tensor(0, "w", (2, 2), np.int8, np.array([[-128, 127], [2, -3]], np.int8),
                   np.array([0.25, 2.0], np.float32), np.array([0, 0]), axis=0)
    np.testing.assert_array_equal(app.dequantize(t), [[-32.0, 31.75], [4.0, -6.0]])
    # depthwise weights are quantised along their last axis
    q = np.arange(6, dtype=np.int8).reshape(1, 1, 2, 3)
    t = app.Tensor(0, "dw", q.shape, np.int8, q, np.array([1.0, 10.0, 100.0], np.float32), np.zeros(3),
                   axis=3)
    np.testing.assert_array_equal(app.dequantize(t)[0, 0], [[0, 10, 200], [3, 40, 500]])
    # int32 bias (its scale: input scale x weight scale)
    t = app.Tensor(0, "b", (2,), np.int32, np.array([3 * 2**20, -7], np.int32),
                   np.array([2.0**-20], np.float32), np.array([0]))
    np.testing.assert_array_equal(app.dequantize(t), np.array([3.0, -7 * 2.0**-20], np.float32))
    with pytest.raises(ValueError, match="no quantisation scale"):
        app.dequantize(app.Tensor(0, "q", (1,), np.uint8, np.zeros(1, np.uint8)))


def test_layouts_match_a_tf_convolution_computed_by_hand(app):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 6, 3)).astype(np.float32)  # NHWC
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)  # OHWI
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.einsum("nyxhwi,ohwi->noyx", np.lib.stride_tricks.sliding_window_view(xp, (3, 3), (1, 2))
                    .transpose(0, 1, 2, 4, 5, 3), w)
    got = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2),
                                     torch.from_numpy(app.conv_weight_to_torch(w)), padding=1)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)
    dw = rng.normal(size=(1, 3, 3, 3)).astype(np.float32)  # 1HWO, depth multiplier 1
    ref = np.einsum("nyxhwc,hwc->ncyx", np.lib.stride_tricks.sliding_window_view(xp, (3, 3), (1, 2))
                    .transpose(0, 1, 2, 4, 5, 3), dw[0])
    got = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2),
                                     torch.from_numpy(app.depthwise_weight_to_torch(dw)), padding=1, groups=3)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_input_fold_is_exact_away_from_the_padding(app):
    from edge_mtl.runtime.preprocess import MEAN, STD, normalize

    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    fw, fb = app.fold_input_normalization(w, b, 1 / 128, 128, MEAN, STD)
    bgr = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    x_tf = torch.from_numpy((bgr[:, :, ::-1].astype(np.float32) - 128) / 128).permute(2, 0, 1)[None]
    x_im = torch.from_numpy(normalize(bgr))[None]
    ref = torch.nn.functional.conv2d(x_tf, torch.from_numpy(w), torch.from_numpy(b), 2, 1)
    got = torch.nn.functional.conv2d(x_im, torch.from_numpy(fw), torch.from_numpy(fb), 2, 1)
    torch.testing.assert_close(got[..., 1:, 1:], ref[..., 1:, 1:], rtol=1e-5, atol=1e-4)
    assert (got[..., 0, :] - ref[..., 0, :]).abs().max() > 1e-2  # the padded row differs


# ---- a synthetic TFLite flatbuffer: a random torchvision MobileNetV2 with BN folded, written
# with the slot numbers of tensorflow/lite/schema/schema.fbs (typed here independently of the app).

def _fold(conv, bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (conv.weight * scale.view(-1, 1, 1, 1)).detach().numpy(), \
        (bn.bias - bn.running_mean * scale).detach().numpy()


def _quantize(x, kind, axis):
    """(stored array, TFLite type, scales, zero points) for ``kind``: float / uint8 / int8 per channel."""
    if kind == "float":
        return x.astype(np.float32), 0, None, None
    if kind == "uint8":
        lo, hi = min(x.min(), 0.0), max(x.max(), 0.0)
        s = (hi - lo) / 255
        z = round(float(-lo / s))
        return np.clip(np.round(x / s) + z, 0, 255).astype(np.uint8), 3, [s], [z]
    red = tuple(i for i in range(x.ndim) if i != axis)
    s = np.abs(x).max(axis=red) / 127
    shape = [1] * x.ndim
    shape[axis] = -1
    return np.round(x / s.reshape(shape)).astype(np.int8), 9, s.tolist(), [0] * s.size


def _write_tflite(net, kinds):
    """TFLite bytes for ``net`` (eval, torchvision mobilenet_v2); ``kinds(i)`` picks the i-th
    conv's weight storage (float / uint8 / int8pc)."""
    import flatbuffers

    b = flatbuffers.Builder(1 << 20)
    b.ForceDefaults(True)  # every field written, even when it equals the schema default
    tensors, buffers = [], [None]  # buffer 0: the empty sentinel

    def tensor(name, shape, data=None, ttype=0, scale=None, zp=None, axis=0):
        buffers.append(None if data is None else np.ascontiguousarray(data).tobytes())
        tensors.append((name, shape, ttype, len(buffers) - 1, scale, zp, axis))
        return len(tensors) - 1

    ops = []  # (opcode index, inputs, outputs, options type, options fields)
    codes = {"ADD": 0, "AVERAGE_POOL_2D": 1, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4, "RESHAPE": 22,
             "SOFTMAX": 25}
    code_list = list(codes.values())
    x = tensor("input", [1, 224, 224, 3], ttype=3, scale=[1 / 128], zp=[128])
    mods = list(net.features.modules())
    convs = [m for m in mods if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in mods if isinstance(m, torch.nn.BatchNorm2d)]
    block_of = {}
    for bi, blk in enumerate(net.features):
        for m in blk.modules():
            block_of[id(m)] = bi
    act = {id(blk[0]) for blk in net.features.modules()
           if isinstance(blk, torchvision.ops.misc.Conv2dNormActivation)}
    block_in = {}
    for i, (conv, bn) in enumerate(zip(convs, bns, strict=True)):
        bi = block_of[id(conv)]
        block_in.setdefault(bi, x)
        w, bias = _fold(conv, bn)
        dw = conv.groups > 1
        w = w[:, 0].transpose(1, 2, 0)[None] if dw else w.transpose(0, 2, 3, 1)  # 1HWO / OHWI
        data, ttype, s, z = _quantize(w, kinds(i), 3 if dw else 0)
        wt = tensor(f"layer{i}/weights", list(w.shape), data, ttype, s, z, 3 if dw else 0)
        if ttype == 0:
            bt = tensor(f"layer{i}/bias", [len(bias)], bias.astype(np.float32))
        else:  # int32 bias, scale = input scale x weight scale (input scale taken as 1/16)
            bs = np.asarray(s, np.float64) / 16 * np.ones(len(bias))
            bt = tensor(f"layer{i}/bias", [len(bias)], np.round(bias / bs).astype(np.int32), 2,
                        bs.tolist(), [0] * len(bias))
        y = tensor(f"layer{i}/out", [1, 1, 1, w.shape[0] if not dw else w.shape[3]])
        fields = {0: (0, "b"), 1: (conv.stride[1], "i"), 2: (conv.stride[0], "i")}  # padding SAME
        if dw:
            fields |= {3: (1, "i"), 4: (3 if id(conv) in act else 0, "b")}
        else:
            fields |= {3: (3 if id(conv) in act else 0, "b")}
        kind = "DEPTHWISE_CONV_2D" if dw else "CONV_2D"
        ops.append((codes[kind], [x, wt, bt], [y], 2 if dw else 1, fields))
        x = y
        last = i + 1 == len(convs) or block_of[id(convs[i + 1])] != bi
        if last and getattr(net.features[bi], "use_res_connect", False):
            out = tensor(f"block{bi}/add", [1, 1, 1, 1])
            ops.append((codes["ADD"], [x, block_in[bi]], [out], 0, {}))
            x = out
    pooled = tensor("pool", [1, 1, 1, 1280])
    ops.append((codes["AVERAGE_POOL_2D"], [x], [pooled], 0, {}))
    lin = net.classifier[1]
    hw = np.concatenate([np.zeros((1, 1280), np.float32), lin.weight.detach().numpy()])[:, None, None]
    hb = np.concatenate([[0.0], lin.bias.detach().numpy()]).astype(np.float32)
    data, ttype, s, z = _quantize(hw, "uint8", 0)
    ht = tensor("logits/weights", list(hw.shape), data, ttype, s, z)
    hbt = tensor("logits/bias", [1001], np.round(hb / (s[0] / 16)).astype(np.int32), 2, [s[0] / 16], [0])
    logits = tensor("logits", [1, 1, 1, 1001])
    ops.append((codes["CONV_2D"], [pooled, ht, hbt], [logits], 1, {0: (1, "b"), 1: (1, "i"), 2: (1, "i")}))
    flat = tensor("flat", [1, 1001])
    ops.append((codes["RESHAPE"], [logits], [flat], 0, {}))
    prob = tensor("prob", [1, 1001])
    ops.append((codes["SOFTMAX"], [flat], [prob], 0, {}))

    def vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    buf_offs = []
    for data in buffers:
        vec = None if data is None else b.CreateNumpyVector(np.frombuffer(data, np.uint8))
        b.StartObject(3)
        if vec is not None:
            b.PrependUOffsetTRelativeSlot(0, vec, 0)
        buf_offs.append(b.EndObject())
    t_offs = []
    for name, shape, ttype, bidx, scale, zp, axis in tensors:
        n, sh = b.CreateString(name), b.CreateNumpyVector(np.asarray(shape, np.int32))
        q = None
        if scale is not None:
            sv = b.CreateNumpyVector(np.asarray(scale, np.float32))
            zv = b.CreateNumpyVector(np.asarray(zp, np.int64))
            b.StartObject(7)
            b.PrependUOffsetTRelativeSlot(2, sv, 0)
            b.PrependUOffsetTRelativeSlot(3, zv, 0)
            b.PrependInt32Slot(6, axis, 0)
            q = b.EndObject()
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, sh, 0)
        b.PrependInt8Slot(1, ttype, 0)
        b.PrependUint32Slot(2, bidx, 0)
        b.PrependUOffsetTRelativeSlot(3, n, 0)
        if q is not None:
            b.PrependUOffsetTRelativeSlot(4, q, 0)
        t_offs.append(b.EndObject())
    op_offs = []
    for code, ins, outs, otype, fields in ops:
        iv = b.CreateNumpyVector(np.asarray(ins, np.int32))
        ov = b.CreateNumpyVector(np.asarray(outs, np.int32))
        opt = None
        if fields:
            b.StartObject(7)
            for slot, (value, kind) in fields.items():
                (b.PrependInt8Slot if kind == "b" else b.PrependInt32Slot)(slot, value, 0)
            opt = b.EndObject()
        b.StartObject(5)
        b.PrependUint32Slot(0, code_list.index(code), 0)
        b.PrependUOffsetTRelativeSlot(1, iv, 0)
        b.PrependUOffsetTRelativeSlot(2, ov, 0)
        if opt is not None:
            b.PrependUint8Slot(3, otype, 0)
            b.PrependUOffsetTRelativeSlot(4, opt, 0)
        op_offs.append(b.EndObject())
    tv, opv = vector(t_offs), vector(op_offs)
    inv = b.CreateNumpyVector(np.asarray([0], np.int32))
    outv = b.CreateNumpyVector(np.asarray([len(tensors) - 1], np.int32))
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, tv, 0)
    b.PrependUOffsetTRelativeSlot(1, inv, 0)
    b.PrependUOffsetTRelativeSlot(2, outv, 0)
    b.PrependUOffsetTRelativeSlot(3, opv, 0)
    sg = b.EndObject()
    code_offs = []
    for c in code_list:
        b.StartObject(4)
        b.PrependInt8Slot(0, min(c, 127), 0)
        b.PrependInt32Slot(3, c, 0)
        code_offs.append(b.EndObject())
    cv, sgv, bv = vector(code_offs), vector([sg]), vector(buf_offs)
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, cv, 0)
    b.PrependUOffsetTRelativeSlot(2, sgv, 0)
    b.PrependUOffsetTRelativeSlot(4, bv, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.fixture(scope="module")
def random_net():
    torch.manual_seed(3)
    net = torchvision.models.mobilenet_v2(weights=None).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net


def _converted(state):
    net = torchvision.models.mobilenet_v2(weights=None)
    net.load_state_dict(state)
    return net.eval()


def _blockwise(ref_net, net):
    """Each features block of both nets on the same random input (a deep random network forgets
    its input, so only block by block is every layer seen): worst |diff| / max |ref| per block."""
    torch.manual_seed(0)
    worst = []
    c, h, w = 3, 32, 48
    with torch.no_grad():
        for ref_blk, blk in zip(ref_net.features, net.features, strict=True):
            x = torch.randn(2, c, h, w)
            ref = ref_blk(x)
            worst.append(((blk(x) - ref).abs().max() / ref.abs().max()).item())
            c, h, w = ref.shape[1:]
    return worst


def test_synthetic_flatbuffer_converts_to_the_same_network(app, random_net):
    data = _write_tflite(random_net, lambda i: "float")
    conv = app.convert(data, fold_input=False, classifier=True)
    assert (conv.input_scale, conv.input_zero_point) == (1 / 128, 128)
    assert len(conv.layers) == 53
    net = _converted(conv.state)
    assert max(_blockwise(random_net, net)) < 1e-5
    for m in net.modules():  # every BatchNorm is exactly identity + bias in eval mode
        if isinstance(m, torch.nn.BatchNorm2d):
            x = torch.randn(1, m.num_features, 3, 3)
            assert torch.equal(m(x), x + m.bias.detach().view(1, -1, 1, 1))
    feats = torch.randn(2, 1280, 2, 3)
    with torch.no_grad():  # the head (written as uint8, class 0 'background' dropped)
        ref = random_net.classifier(feats.mean((2, 3)))
        got = net.classifier(feats.mean((2, 3)))
    assert (got - ref).abs().max() < 0.02 * ref.abs().max()
    features = app.convert(data).state  # the default: features only, ImageNet mean/std folded in
    assert set(features) == {k for k in conv.state if k.startswith("features.")}
    assert not torch.equal(features["features.0.0.weight"], conv.state["features.0.0.weight"])
    assert torch.equal(features["features.1.conv.0.0.weight"], conv.state["features.1.conv.0.0.weight"])


def test_synthetic_quantised_flatbuffer_dequantises_every_layout(app, random_net):
    kinds = ["int8pc", "int8pc", "uint8"]  # every depthwise layer (1, 4, 7, ...) per channel
    data = _write_tflite(random_net, lambda i: kinds[i % 3])
    conv = app.convert(data, fold_input=False, classifier=True)
    w0, _ = _fold(random_net.features[0][0], random_net.features[0][1])  # int8 per channel
    q0, _, s0, _ = _quantize(w0.transpose(0, 2, 3, 1), "int8pc", 0)
    expect = (q0 * np.asarray(s0)[:, None, None, None]).astype(np.float32).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(conv.state["features.0.0.weight"].numpy(), expect)
    worst = _blockwise(random_net, _converted(conv.state))
    assert max(worst) < 0.05, worst  # 8-bit weights: a few per cent per block at most


def test_a_graph_that_is_not_mobilenet_v2_1_0_is_refused(app):
    with pytest.raises(ValueError, match="TFLite flatbuffer"):
        app.convert(b"\0" * 16)
    net = torchvision.models.mobilenet_v2(weights=None, width_mult=0.5).eval()  # same graph, other widths
    with pytest.raises(ValueError, match=r"layer 0 .*vs torch"):
        app.convert(_write_tflite(net, lambda i: "float"))



# ---- BatchNorm statistics (the conversion's identity + bias BN re-expressed around its input)

def _bn_inputs(net, x):
    """The input of every BatchNorm of ``net.features`` (eval mode) on ``x``."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach().double()))
             for m in net.features.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        net.eval().features(x)
    for h in hooks:
        h.remove()
    return seen


def test_bn_statistics_keep_the_eval_function_and_make_train_mode_agree(app, random_net):
    state = app.storage(app.convert(_write_tflite(random_net, lambda i: "float")).state)
    torch.manual_seed(5)
    images = torch.randn(6, 3, 64, 96).numpy()  # two batches of 4 and 2 in the pass
    stats, first = app.bn_statistics(state, images, tf_padding=True)
    assert len(stats) == 52 and first.shape == (4, 1280, 2, 3)
    shipped = app.with_bn_statistics(state, stats)
    x = torch.from_numpy(images)
    # The statistics are those of each BatchNorm's input, TF-padded net, over all 6 images.
    inputs = _bn_inputs(app._features_net(state, True), x)
    for (key, (m, v)), inp in zip(stats.items(), inputs, strict=True):
        np.testing.assert_allclose(m, inp.mean((0, 2, 3)).numpy(), rtol=1e-9, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(v, inp.var((0, 2, 3), unbiased=False).numpy(), rtol=1e-7, atol=1e-9)
    ident_eval = app._features_net(state, True).features(x).detach()
    eval_ = app._features_net(shipped, True).features(x).detach()
    assert ((eval_ - ident_eval).abs().max() / ident_eval.abs().max()) < 1e-5  # the same function
    np.testing.assert_array_equal(first, ident_eval[:4].numpy())  # what main checks against
    with torch.no_grad():  # train mode on the very batch the statistics came from: the same function
        train = app._features_net(shipped, True).train().features(x)
        ident_train = app._features_net(state, True).train().features(x)
    assert ((train - eval_).abs().max() / eval_.abs().max()) < 1e-4
    assert ((ident_train - ident_eval).abs().max() / ident_eval.abs().max()) > 0.1  # identity BN does not
    # The eval-mode affine map of every conv + BN is unchanged; the conv weights are untouched.
    before, after = app.folded_eval(state), app.folded_eval(shipped)
    for key, (w, b) in before.items():
        torch.testing.assert_close(after[key][0], w, rtol=1e-6, atol=0)
        torch.testing.assert_close(after[key][1], b, rtol=1e-6, atol=1e-6)
        assert torch.equal(shipped[f"{key}.weight"], state[f"{key}.weight"])
    with pytest.raises(ValueError, match="not an identity"):
        app.with_bn_statistics(shipped, stats)


def test_raw_input_scaling_is_the_inverse_of_the_imagenet_normalisation(app):
    from edge_mtl.runtime.preprocess import normalize

    bgr = np.random.default_rng(2).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    raw = app.to_raw_input(normalize(bgr)[None], 1 / 128, 128)
    expect = (bgr[:, :, ::-1].astype(np.float32) - 128) / 128
    np.testing.assert_allclose(raw[0].transpose(1, 2, 0), expect, rtol=0, atol=1e-5)


# ---- the real file

def _tf_reference(app, graph, x: torch.Tensor, first_pad: torch.Tensor) -> dict[tuple, torch.Tensor]:
    """The TFLite graph's feature operators run in float32 from its own (dequantised) tensors,
    NCHW, with TF 'SAME' padding as TensorFlow defines it (``out = ceil(n / s)``,
    ``pad_total = max((out - 1) s + k - n, 0)``, the smaller half before); the first convolution
    pads with ``first_pad`` per channel (what zero in ImageNet-normalised input is in raw input).
    Returns the last map of each (channels, height)."""
    import math

    vals = {graph.inputs[0].index: x}
    last: dict[tuple, torch.Tensor] = {}
    first = True
    for op in graph.ops:
        if op.kind == "AVERAGE_POOL_2D":
            break
        if op.kind == "ADD":
            y = vals[op.inputs[0].index] + vals[op.inputs[1].index]
        else:
            inp = vals[op.inputs[0].index]
            w = torch.from_numpy(app.dequantize(op.inputs[1]))
            b = torch.from_numpy(app.dequantize(op.inputs[2]))
            if op.kind == "DEPTHWISE_CONV_2D":
                w, groups = w[0].permute(2, 0, 1)[:, None], w.shape[-1]
            else:
                w, groups = w.permute(0, 3, 1, 2), 1
            o = op.options
            pads = []
            for n, k, s in ((inp.shape[3], w.shape[3], o["stride_w"]),
                            (inp.shape[2], w.shape[2], o["stride_h"])):
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]
            c = first_pad.view(1, -1, 1, 1) if first else torch.zeros(())
            y = F.conv2d(F.pad(inp - c, pads) + c, w, b, (o["stride_h"], o["stride_w"]), groups=groups)
            if o["fused_activation_function"] == 3:
                y = y.clamp(0, 6)
            first = False
        vals[op.outputs[0].index] = y
        last[tuple(y.shape[1:3])] = y
    return last


@pytest.mark.skipif(not TFLITE.is_file(), reason="needs ../shared/data/pretrained (the real .tflite)")
def test_backbone_with_tf_padding_reproduces_the_tf_padded_graph(app, tmp_path):
    from edge_mtl.imageio import read_image
    from edge_mtl.model.backbone import MobileNetBackbone
    from edge_mtl.runtime.preprocess import MEAN, preprocess

    fp32 = tmp_path / "mnv2_fp32.pt"
    assert app.main([str(TFLITE), "--out", str(fp32), "--fp32", "--bn-images", "0"]) == 0
    frame = read_image(sorted((SHARED_DATA / "bdd_frames").glob("*.jpg"))[0])
    x = torch.from_numpy(preprocess(frame, (192, 320)))[None]  # ImageNet mean/std, as the project
    graph = app.read_tflite(TFLITE.read_bytes())
    scale, zero = float(graph.inputs[0].scale[0]), float(graph.inputs[0].zero_point[0])
    x_raw = torch.from_numpy(app.to_raw_input(x.numpy(), scale, zero))
    errors = {}
    with torch.no_grad():
        ref = _tf_reference(app, graph, x_raw, torch.from_numpy((MEAN - zero) * scale))
        for path, tf_padding in ((fp32, True), (SHIPPED, True), (SHIPPED, False)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf_padding=False: the file's own warning
                bb = MobileNetBackbone("mobilenet_v2", pretrained=str(path), tf_padding=tf_padding).eval()
            outs = bb(x)
            assert [o.shape[2] for o in outs] == [96, 48, 24, 12, 6]
            refs = [ref[tuple(o.shape[1:3])] for o in outs]  # the block outputs at strides 2..32
            errors[path.name, tf_padding] = [((o - r).abs().max() / r.abs().max()).item()
                                             for o, r in zip(outs, refs, strict=True)]
    assert max(errors[fp32.name, True]) < 1e-4, errors  # the mapping, padding and input fold: exact
    assert max(errors[SHIPPED.name, True]) < 3e-2, errors  # what fp16 storage costs (1.5e-2 at stride 32)
    assert min(errors[SHIPPED.name, False]) > 0.3, errors  # torchvision padding: another function


@pytest.mark.skipif(not TFLITE.is_file(), reason="needs ../shared/data/pretrained (the real .tflite)")
def test_reconverting_the_real_tflite_reproduces_the_shipped_file(app, tmp_path):
    """The conv weights exactly; the BatchNorm statistics depend on the synthetic world's renderer
    (and on how many frames), but the eval-mode function they leave (conv + BN as one affine map)
    does not: that is compared within float rounding."""
    shipped = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    meta = shipped.pop(PRETRAINED_META_KEY)
    bn_of = {conv: bn for conv, bn, _ in app.torchvision_pairs(torchvision.models.mobilenet_v2(weights=None))}
    for bn_images in (0, 2):
        out = tmp_path / f"mnv2_{bn_images}.pt"
        assert app.main([str(TFLITE), "--out", str(out), "--bn-images", str(bn_images)]) == 0
        again = torch.load(out, map_location="cpu", weights_only=True)
        again_meta = again.pop(PRETRAINED_META_KEY)
        assert again_meta["tf_padding"] is True and again_meta["bn_images"] == bn_images
        assert {k: v for k, v in again_meta.items() if not k.startswith("bn_")} == \
            {k: v for k, v in meta.items() if not k.startswith("bn_")}
        assert list(again) == list(shipped)
        for k, v in shipped.items():
            assert again[k].dtype == v.dtype, k
            if v.ndim == 4:  # conv weights
                assert torch.equal(again[k], v), k
        mine, theirs = app.folded_eval(again), app.folded_eval(shipped)
        for key, (w, b) in theirs.items():
            torch.testing.assert_close(mine[key][0], w, rtol=1e-6, atol=0, msg=key)
            mean = max(shipped[f"{bn_of[key]}.running_mean"].abs().max().item(),
                       again[f"{bn_of[key]}.running_mean"].abs().max().item())
            torch.testing.assert_close(mine[key][1], b, rtol=1e-6, atol=1e-6 * (1 + mean), msg=key)
        if bn_images == 0:  # identity + bias BatchNorm
            assert torch.equal(again["features.0.1.weight"], torch.ones(32))
            assert torch.equal(again["features.0.1.running_mean"], torch.zeros(32))
