"""Dynamic Normalization, DN-B and DN-C (Liu, Gao & Lv, 2021; no public code).

Both normalise exactly as BN and let a small "SC module" generate the scale and shift from data
statistics:

    x_hat            = (x - mu) / sqrt(sigma2 + eps)     batch mu, sigma2 over (N, H, W) in
                                                          training, running stats in eval
    (dgamma, dbeta)  = FC2(ReLU(FC1(s)))                  FC1: 2C -> max(C // reduction, 8),
                                                          FC2: -> 2C, zero-initialised
    y                = (gamma + dgamma) * x_hat + (beta + dbeta)

DN-B (batch- and channel-wise): s[n] = [mean_{h,w} x[n], std_{h,w} x[n]] per sample, so every
sample gets its own (gamma, beta). DN-C (batch-shared, channel-wise): s = [mu, sqrt(sigma2+eps)],
the batch statistics, one (gamma, beta) per channel shared by the batch.

Choices the paper's abstract leaves open, made here:
- The SC module is SE-like as above (reduction 16, at least 8 hidden units); its last FC is
  zero-initialised so the layer starts as exact BN (``sc_form='residual'``, the default). Its
  extra cost: docs/performance.md (the paper: +0.6 % Mult-Adds).
- ``sc_form='literal'``: the paper's words taken literally, the SC module *generates* the scale
  and shift, y = dgamma * x_hat + dbeta, with no gamma, beta of its own, and both FCs keep
  PyTorch's default (SE-block) initialisation, so the layer does not start as BN. An ablation
  form (issue 31: does "DN-C can't train normally" hold of this form and not of the residual
  one?); it has no ``weight``/``bias`` parameters.
- The per-sample std is sqrt(var_{h,w} + eps) (biased var), so 1x1 maps give a finite input.
- DN-C's SC input is one quantity in train and eval: the channel's std as the running statistics
  estimate it, sqrt(unbiased batch variance + eps) in training and sqrt(running_var + eps) in
  eval (with the batch mean and running_mean). In eval DN-C is therefore a fixed per-channel
  affine, which folds into the conv before it like BN (``eval_affine``).
- Gradients flow through the statistics into the SC module (as in SE blocks); nothing is detached.
- Eval: DN-B still computes its per-sample statistics (no batch dependence); DN-C feeds its SC
  module the running statistics, so eval output does not depend on the rest of the batch.
- Running statistics follow torch BN: momentum 0.1 weighs the NEW value, running_var is updated
  with the unbiased batch variance. Non-finite statistics leave them unchanged and flag the layer
  (``normdet.layers.nonfinite_layers``); nothing synchronises with the host.
- ``sync_stats=True`` reduces the BATCH statistics (mu, sigma2: the normalisation, and DN-C's SC
  input) over all processes, like SyncBN; DN-B's SC input stays per sample (it has no batch
  dependence to share). Default False: per-GPU statistics, as the paper trained.
Statistics and the SC module run in float32 (autocast off: the SC module is tiny and its weight
gradients lose too much in bf16); the output is cast back to the input dtype. Training and DN-B's
eval are one fused pass pair (``normdet.layers._affine``: y = A x + B with A, B from the
statistics; Triton kernels on CUDA).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ._affine import as_dtype, backend, exporting
from ._checks import check_args, check_batch_stats, check_input, flag_nonfinite, upcast
from ._dist import (all_reduce_sum, batch_moments, sync_world_size, unbias,
                    update_running_stats)


SC_INPUTS = ('raw', 'normalized')
SC_FORMS = ('residual', 'literal')


class _DNFunction(torch.autograd.Function):
    """DN-B/DN-C in training and DN-B in eval, forward and backward by hand: two passes over the
    activation each way (``normdet.layers._affine``'s primitives) and the rest on N x C values,
    without autograd (its per-op overhead dominated small maps). The equations are the module
    docstring's; the backward, for dA = sum_hw g x and dB = sum_hw g per (sample, channel):

        B = beta + dbeta - A mu            gA = dA - dB mu,  g_mu -= sum_n dB A
        A = (gamma + dgamma) rstd          g_dgamma = gA rstd,  g_rstd = sum_n gA (gamma + dgamma)
        [dgamma, dbeta] = W2 relu(W1 s + b1) + b2                      (the MLP, by hand)
        s = SC input of (m, v, mu, var)    (per ``sc_input``)
        rstd = (var + eps)^-1/2            g_var -= g_rstd rstd^3 / 2
        mu = mean m, var = mean (v + (m - mu)^2)   over the batch (all processes with sync_stats:
                                           the batch gradients g_mu, g_var are summed over them)
        dx = A g + (g_m + 2 g_v (x - m)) / HW + (g_mu + 2 g_var (x - mu)) / count

    ``tests/test_dn.py`` holds it to a float64 autograd reference and gradcheck."""

    @staticmethod
    def forward(ctx, x, weight, bias, w1, b1, w2, b2, layer):
        ops = backend(x)
        m, v = ops.stats(x, 'moments')
        dtype, n, hw = m.dtype, x.shape[0], x.shape[2] * x.shape[3]
        if layer.training:
            mu, var, count = batch_moments(m, v, hw, layer.sync_stats)
            # var = mean(v + (m - mu)^2) is finite only if every m, v (and so mu) is
            update_running_stats(layer, mu, var, count, layer.momentum,
                                 flag_nonfinite(layer, var))
        else:
            mu, var = as_dtype(layer.running_mean, dtype), as_dtype(layer.running_var, dtype)
            count = None
        rstd = torch.rsqrt(var + layer.eps)
        s, sc_saved = layer._sc_forward(m, v, mu, var, rstd, count)
        # (no autograd inside a Function's forward: no detach needed)
        sd = w1.dtype
        w1, b1, w2, b2 = (as_dtype(t, dtype) for t in (w1, b1, w2, b2))
        a1 = F.linear(s, w1, b1)
        h = torch.relu(a1)
        o, c = F.linear(h, w2, b2), layer.num_features
        gamma = o[:, :c] + as_dtype(weight, dtype)
        a = gamma * rstd
        b = torch.addcmul(o[:, c:] + as_dtype(bias, dtype), a, mu, value=-1)
        if a.shape[0] != n:  # DN-C: one affine for the batch
            a, b = a.expand(n, -1), b.expand(n, -1)
        z = ops.affine(x, a, b, None)
        ctx.save_for_backward(x, m, v, mu, rstd, s, a1, h, gamma, a)
        ctx.sc_saved, ctx.count, ctx.ops, ctx.layer = sc_saved, count, ops, layer
        ctx.sync = count is not None and sync_world_size(layer.sync_stats) > 1
        ctx.params = (w1, w2)
        ctx.dtypes = (weight.dtype, sd)
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gz):
        x, m, v, mu, rstd, s, a1, h, gamma, a_full = ctx.saved_tensors
        ops, layer, (w1, w2), count = ctx.ops, ctx.layer, ctx.params, ctx.count
        hw = x.shape[2] * x.shape[3]
        dA, dB, _, aux = ops.grad_sums(gz, x, a_full, None, None)  # no TLU: no B needed
        a = a_full
        if gamma.shape[0] == 1:  # DN-C: one affine for the batch
            dA, dB, a = dA.sum(0, keepdim=True), dB.sum(0, keepdim=True), a_full[:1]
        gA = torch.addcmul(dA, dB, mu, value=-1)
        g_gamma = gA * rstd
        go = torch.cat([g_gamma, dB], dim=1)  # d[dgamma, dbeta]
        g_weight, g_bias = g_gamma.sum(0), dB.sum(0)
        g_b2 = torch.cat([g_weight, g_bias])
        g_w2 = go.t() @ h
        g_a1 = torch.ops.aten.threshold_backward(go @ w2, a1, 0.)  # through the ReLU
        g_w1, g_b1 = g_a1.t() @ s, g_a1.sum(0)
        # the SC input's gradient: g_m and g_v2 = 2 g_v per sample (None: 0), and the batch's
        g_m, g_v2, g_mu, g_var, g_rstd = layer._sc_backward(g_a1 @ w1, m, v, mu, rstd,
                                                           ctx.sc_saved, count)
        # dx = A g + c1 + c2 x, from m, v (per sample, over HW pixels) and mu, var (over the
        # batch's count pixels, in training; eval's running statistics have no gradient to x):
        #   c2 = 2 g_v / HW + 2 g_var / count
        #   c1 = (g_m - 2 g_v m) / HW + (g_mu - 2 g_var mu) / count
        c1 = None  # HW times the per-sample part of c1 (its c2 part is g_v2 / HW)
        if g_v2 is not None:
            c1 = torch.addcmul(g_m, g_v2, m, value=-1) if g_m is not None else g_v2 * -m
        elif g_m is not None:
            c1 = g_m
        if count is not None:  # training: mu, var are the batch's, back to every sample's m, v
            # through B = ... - A mu and A = (gamma + dgamma) rstd, rstd = (var + eps)^-1/2:
            # g_mu -= sum_n dB A,  g_var -= g_rstd rstd^3 / 2
            g_rstd = _plus(g_rstd, torch.linalg.vecdot(gA, gamma, dim=0))
            per = 1 / count  # a number, or 1 / the all-reduced count (a tensor)
            gvk = torch.mul(g_rstd, rstd.pow(3)).mul_(-per)  # 2 g_var / count
            mvk = torch.linalg.vecdot(dB, a, dim=0).mul_(-per)  # g_mu / count
            if g_var is not None:  # the SC input's own (DN-C)
                gvk = gvk + g_var * (2 * per)
            if g_mu is not None:
                mvk = mvk + g_mu * per
            if ctx.sync:
                gvk, mvk = all_reduce_sum(gvk), all_reduce_sum(mvk)
            cvec = torch.addcmul(mvk, gvk, mu, value=-1)
            c2 = gvk.expand_as(m) if g_v2 is None else torch.add(gvk, g_v2, alpha=1 / hw)
            c1 = cvec.expand_as(m) if c1 is None else torch.add(cvec, c1, alpha=1 / hw)
        else:
            c2 = None if g_v2 is None else g_v2 * (1 / hw)
            c1 = None if c1 is None else c1 * (1 / hw)
        if c2 is None:  # eval with nothing from the SC input
            c2 = torch.zeros_like(m)
        dx = ops.input_grad(gz, x, a_full, None, None, c1, c2, aux)
        wd, sd = ctx.dtypes
        return (dx, as_dtype(g_weight, wd), as_dtype(g_bias, wd), as_dtype(g_w1, sd),
                as_dtype(g_b1, sd), as_dtype(g_w2, sd), as_dtype(g_b2, sd), None)


def _plus(t, u):
    """t + u, with None for 0."""
    return u if t is None else t + u


class _DynamicNorm(nn.Module):
    per_sample: bool  # DN-B: SC input per sample; DN-C: batch statistics

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 reduction: int = 16, min_hidden: int = 8, sync_stats: bool = False,
                 sc_input: str = 'raw', sc_form: str = 'residual'):
        super().__init__()
        check_args(type(self).__name__, num_features, eps, momentum, reduction=reduction,
                   min_hidden=min_hidden)
        if sc_input not in SC_INPUTS:
            raise ValueError(f'sc_input must be one of {SC_INPUTS}, got {sc_input!r}')
        if sc_form not in SC_FORMS:
            raise ValueError(f'sc_form must be one of {SC_FORMS}, got {sc_form!r}')
        self.sc_input_kind, self.sc_form = sc_input, sc_form
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.sync_stats = sync_stats
        hidden = max(num_features // reduction, min_hidden)
        if sc_form == 'residual':
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:  # the SC module's output is the whole affine: gamma = beta = 0 added, not learnt
            self.register_parameter('weight', None)
            self.register_parameter('bias', None)
            self.register_buffer('_no_affine', torch.zeros(num_features), persistent=False)
        self.sc = nn.Sequential(nn.Linear(2 * num_features, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, 2 * num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('num_batches_tracked', torch.zeros((), dtype=torch.long))
        self._finite = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.sc_form == 'literal':  # PyTorch's default init of both FCs, as an SE block
            for fc in (self.sc[0], self.sc[-1]):
                fc.reset_parameters()
            return
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.sc[-1].weight)  # starts as exact BN
        nn.init.zeros_(self.sc[-1].bias)

    def _affine(self):
        """(gamma, beta) added to the SC module's output: the layer's own, or zeros (literal)."""
        if self.weight is None:
            return self._no_affine, self._no_affine
        return self.weight, self.bias

    def _sc_forward(self, m, v, mu, var, rstd, count):
        """(s, saved): the SC module's input, and what its backward needs, from the per-sample
        moments (m, v) and the normalisation's (mu, var, rstd) (batch or running); ``count`` is
        the batch's element count in training (DN-C's std is then the unbiased estimate, the
        quantity running_var tracks), None in eval.

        ``sc_input='raw'``: DN-B per-sample [mean, std] (N, 2C), DN-C the batch's [mean, std]
        (1, 2C), as the paper's abstract describes them. ``'normalized'``: the same statistics
        made invariant to the scale (and DN-B to the shift) of the layer's input, as BN's output
        is: DN-B the per-sample [mean, std] of x_hat, [(m - mu) / sigma, std / sigma]; DN-C
        [mu / sigma, log sigma - mean over channels of log sigma]."""
        if self.per_sample:
            q = torch.sqrt(v + self.eps)
            if self.sc_input_kind == 'raw':
                return torch.cat([m, q], dim=1), (q,)
            return torch.cat([(m - mu) * rstd, q * rstd], dim=1), (q,)
        k = unbias(count) if count is not None else 1.0
        su = torch.sqrt(var * k + self.eps)
        if self.sc_input_kind == 'raw':
            return torch.cat([mu, su]).unsqueeze(0), (su, k)
        log_su = torch.log(su)
        return torch.cat([mu / su, log_su - log_su.mean()]).unsqueeze(0), (su, k)

    def _sc_backward(self, g_s, m, v, mu, rstd, saved, count):
        """The gradients of the SC input with respect to (m, v) per sample and to the batch's
        (mu, var, rstd): (g_m, 2 g_v, g_mu, g_var, g_rstd), None where zero."""
        c = self.num_features
        g1, g2 = g_s[:, :c], g_s[:, c:]
        if self.per_sample:
            (q,) = saved  # q = sqrt(v + eps): dq / dv = 1 / (2 q)
            if self.sc_input_kind == 'raw':
                return g1, g2 / q, None, None, None
            g_rstd = torch.linalg.vecdot(g1, m - mu, dim=0) + torch.linalg.vecdot(g2, q, dim=0)
            g_m = g1 * rstd
            return g_m, g2 * rstd / q, -g_m.sum(0), None, g_rstd
        su, k = saved
        g1, g2 = g1[0], g2[0]
        if self.sc_input_kind == 'raw':
            g_mu, g_su = g1, g2
        else:
            g_mu = g1 / su
            g_su = -g1 * mu / su.square() + (g2 - g2.mean()) / su
        return None, None, g_mu, g_su * 0.5 / su * k, None

    def coefficients(self, mu, var, s):
        """(A, B) of y = A x + B: BN with the running or batch (mu, var) and the SC module's
        (dgamma, dbeta) on ``s``, all float32."""
        dtype = mu.dtype
        dgamma, dbeta = self.sc(s.to(self.sc[0].weight.dtype)).to(dtype).chunk(2, dim=1)
        weight, bias = self._affine()
        a = (weight.to(dtype) + dgamma) * torch.rsqrt(var + self.eps)
        return a, bias.to(dtype) + dbeta - a * mu

    def eval_affine(self):
        """DN-C in eval: the per-channel (s, t) with y = s x + t (for folding)."""
        if self.per_sample:
            raise TypeError('DN-B has no eval-time affine: its scale depends on each sample')
        dtype = torch.promote_types(self.running_mean.dtype, torch.float32)
        mu, var = self.running_mean.to(dtype), self.running_var.to(dtype)
        s, _ = self._sc_forward(None, None, mu, var, torch.rsqrt(var + self.eps), None)
        a, b = self.coefficients(mu, var, s)
        return a[0], b[0]

    def _eval_plain(self, x: torch.Tensor) -> torch.Tensor:
        """DN-B in eval in plain PyTorch ops (the module docstring's formula with the running
        statistics), for exporters; the Function computes the same in two fused passes."""
        x32 = upcast(x)
        m = x32.mean(dim=(2, 3))
        v = (x32 - m[:, :, None, None]).square().mean(dim=(2, 3))
        mu, var = self.running_mean.to(m.dtype), self.running_var.to(m.dtype)
        s, _ = self._sc_forward(m, v, mu, var, torch.rsqrt(var + self.eps), None)
        a, b = self.coefficients(mu, var, s)
        return (x32 * a[:, :, None, None] + b[:, :, None, None]).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        check_batch_stats(self, x, sync_world_size(self.sync_stats))
        if not self.training and not self.per_sample:  # DN-C in eval: a fixed affine
            a, b = self.eval_affine()
            return torch.addcmul(b.view(1, -1, 1, 1), upcast(x), a.view(1, -1, 1, 1)).to(x.dtype)
        if not self.training and exporting():
            return self._eval_plain(x)
        sc, (weight, bias) = self.sc, self._affine()
        with torch.autocast(x.device.type, enabled=False):  # float32 inside, x's dtype out
            return _DNFunction.apply(x, weight, bias, sc[0].weight, sc[0].bias,
                                     sc[2].weight, sc[2].bias, self)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, '
                f'sync_stats={self.sync_stats}, sc_input={self.sc_input_kind!r}'
                + (f', sc_form={self.sc_form!r}' if self.sc_form != 'residual' else ''))


class DNB(_DynamicNorm):
    """DN-B: per-sample, per-channel scale and shift from each sample's statistics."""
    _abbr_ = 'dnb'
    per_sample = True


class DNC(_DynamicNorm):
    """DN-C: batch-shared, per-channel scale and shift from the batch statistics."""
    _abbr_ = 'dnc'
    per_sample = False
