"""Reference trace of PyTorch 1.13's torch.cuda.amp.GradScaler (dynamic loss scaling) for the
C++ GradScaler tests. Writes tests/data/grad_scaler.txt: plain text, one line per step,
blank-separated, '#' lines are comments, a `# run <name> ...` line opens each run and a
`# columns:` line names the fields:
  step scale_used skipped found_inf scale_after tracker_after w0 w1 w2 b0 b1 gw0 gw1 gw2 gb0 gb1
step is 0-based; scale_used is the scale the loss was multiplied by in that step; skipped is
1 when optimizer.step() was skipped; found_inf is the f32 flag the unscale kernel produced (0
or 1); scale_after / tracker_after are the scale and growth tracker after update();
w0..b1 are the parameters after the step (%.9g of f32); gw0..gb1 are the unscaled gradients
of that step (what optimizer.step() sees; inf/nan on injected steps).

PyTorch 1.13 has no CPU kernels for torch._amp_update_scale_ and
torch._amp_foreach_non_finite_check_and_unscale_ (both raise NotImplementedError on CPU
tensors), and GradScaler disables itself without CUDA. So this script runs the installed
GradScaler class's own Python code (scale / unscale_ / step / update, unmodified) with:
  * _enabled forced on and the is_cuda asserts of scale() and _MultiDeviceReplicator lifted;
  * the two kernels replaced by Python copies of their CUDA kernels (ATen AmpKernels.cu):
      unscale: for each grad element, found_inf = 1 if !isfinite(v); v = (inv_scale == 1 ? v
               : v * inv_scale) in f32, done for every element even when found_inf is set;
               inv_scale = float(1.0 / double(scale)).
      update:  if found_inf: scale = float(scale * backoff); tracker = 0
               else: t = tracker + 1; if t == growth_interval: s = float(scale * growth);
               if isfinite(s): scale = s; tracker = 0; else tracker = t.
Model: w (3 f32) = [0.5, -1.25, 2], b (2 f32) = [0.75, -0.375], torch.optim.SGD(lr=0.1),
loss = sum(cw*w) + sum(cb*b), scaler.scale(loss).backward(), so the raw gradients are
cw*scale, cb*scale, with cw = [0.5, -0.25, 1]*k, cb = [0.125, -2]*k, k = 1 + (step % 3).
Run "interval3": init_scale 2**16, growth 2, backoff 0.5, growth_interval 3, 30 steps; cw[1]
= inf at steps 4 and 11, cb[1] = inf at step 5, cb[0] = nan at step 20.
Run "interval2000": same but growth_interval 2000 (default), cw[1] = inf at step 7 only.
The parameter update is PyTorch's SGD p.add_(g, alpha=-0.1) in f32, which on this CPU build is
a fused multiply-add with one rounding, p = fma(g, float(-0.1), p), for every element (checked
on 3-, 5- and 7-element tensors against the unfused form); compare params to ~1 ulp.
Run once: /usr/bin/python3 tests/data/gen_grad_scaler.py
"""
import math
import os
import warnings

import torch
import torch.cuda.amp.grad_scaler as gs

torch.set_num_threads(1)
torch.manual_seed(0)
HERE = os.path.dirname(os.path.abspath(__file__))


# ---- Python copies of the CUDA kernels ---------------------------------------------------
def amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale):
    inv = inv_scale.item()  # f32 value
    for g in grads:
        if not torch.isfinite(g).all():
            found_inf.fill_(1.0)
        if inv != 1.0:
            g.mul_(inv_scale)  # f32 * f32 -> f32, same as the kernel's opmath float


def amp_update_scale_(scale, tracker, found_inf, growth, backoff, interval):
    s = scale.item()
    if found_inf.item():
        scale.fill_(float(torch.tensor(s * backoff, dtype=torch.float32)))
        tracker.fill_(0)
    else:
        t = int(tracker.item()) + 1
        if t == interval:
            ns = float(torch.tensor(s * growth, dtype=torch.float32))
            if math.isfinite(ns):
                scale.fill_(ns)
            tracker.fill_(0)
        else:
            tracker.fill_(t)
    return scale


for name, fn in (("_amp_update_scale_", amp_update_scale_),
                 ("_amp_foreach_non_finite_check_and_unscale_",
                  amp_foreach_non_finite_check_and_unscale_)):
    try:  # confirm that 1.13 really has no CPU kernel
        if name == "_amp_update_scale_":
            getattr(torch, name)(torch.ones(1), torch.zeros(1, dtype=torch.int32),
                                 torch.zeros(1), 2.0, 0.5, 3)
        else:
            getattr(torch, name)([torch.ones(2)], torch.zeros(1), torch.ones(1))
        raise SystemExit("torch.%s has a CPU kernel in this build: use it instead" % name)
    except NotImplementedError:
        pass
    setattr(torch, name, fn)  # grad_scaler.py calls torch.<name>


class _CpuReplicator(gs._MultiDeviceReplicator):
    def __init__(self, master_tensor):  # the original asserts master_tensor.is_cuda
        self.master = master_tensor
        self._per_device_tensors = {}


gs._MultiDeviceReplicator = _CpuReplicator


class CpuGradScaler(gs.GradScaler):
    def __init__(self, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gs.GradScaler.__init__(self, enabled=False, **kw)
        # redo the enabled branch of __init__
        self._enabled = True
        self._init_scale = kw.get("init_scale", 2.0 ** 16)
        self._scale = None
        self._growth_factor = kw.get("growth_factor", 2.0)
        self._backoff_factor = kw.get("backoff_factor", 0.5)
        self._growth_interval = kw.get("growth_interval", 2000)
        self._init_growth_tracker = 0
        self._growth_tracker = None
        self._per_optimizer_states = gs.defaultdict(gs._refresh_per_optimizer_state)

    def scale(self, outputs):  # the original's tensor branch minus its is_cuda assert
        if self._scale is None:
            self._lazy_init_scale_growth_tracker(outputs.device)
        return outputs * self._scale.to(device=outputs.device, non_blocking=True)


def fmt(v):
    return "%.9g" % v


def run(name, growth_interval, inject, steps=30):
    w = torch.tensor([0.5, -1.25, 2.0], requires_grad=True)
    b = torch.tensor([0.75, -0.375], requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=0.1)
    scaler = CpuGradScaler(init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                           growth_interval=growth_interval)
    lines = []
    for step in range(steps):
        k = 1.0 + (step % 3)
        cw = torch.tensor([0.5, -0.25, 1.0]) * k
        cb = torch.tensor([0.125, -2.0]) * k
        for (which, idx, val) in inject.get(step, []):
            (cw if which == "w" else cb)[idx] = val
        opt.zero_grad()
        loss = (cw * w).sum() + (cb * b).sum()
        scaled = scaler.scale(loss)
        scale_used = scaler._scale.item()
        scaled.backward()
        before = [p.detach().clone() for p in (w, b)]
        opt_state = scaler._per_optimizer_states[id(opt)]
        scaler.step(opt)
        found = sum(v.item() for v in opt_state["found_inf_per_device"].values())
        changed = any(not torch.equal(p0, p.detach()) for p0, p in zip(before, (w, b)))
        skipped = int(found != 0)
        assert changed == (not skipped)
        grads = torch.cat([w.grad, b.grad]).tolist()
        scaler.update()
        params = torch.cat([w.detach(), b.detach()]).tolist()
        lines.append(" ".join([str(step), fmt(scale_used), str(skipped), fmt(found),
                               fmt(scaler._scale.item()), str(int(scaler._growth_tracker.item()))]
                              + [fmt(v) for v in params] + [fmt(v) for v in grads]))
    return lines


inf, nan = float("inf"), float("nan")
out = ["# generated by gen_grad_scaler.py with torch %s; do not edit" % torch.__version__,
       "# columns: step scale_used skipped found_inf scale_after tracker_after "
       "w0 w1 w2 b0 b1 gw0 gw1 gw2 gb0 gb1",
       "# steps are 0-based; see gen_grad_scaler.py for the model and gradients"]
out.append("# run interval3 init_scale=65536 growth_factor=2 backoff_factor=0.5 "
           "growth_interval=3 inf:4(w1),5(b1),11(w1) nan:20(b0)")
out += run("interval3", 3, {4: [("w", 1, inf)], 5: [("b", 1, inf)], 11: [("w", 1, inf)],
                            20: [("b", 0, nan)]})
out.append("# run interval2000 init_scale=65536 growth_factor=2 backoff_factor=0.5 "
           "growth_interval=2000 inf:7(w1)")
out += run("interval2000", 2000, {7: [("w", 1, inf)]})
with open(os.path.join(HERE, "grad_scaler.txt"), "w") as f:
    f.write("\n".join(out) + "\n")
print("\n".join(out))
