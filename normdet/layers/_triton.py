"""Fused Triton kernels for the activation passes of ``normdet.layers._affine`` (CUDA; on the CPU
under ``TRITON_INTERPRET=1`` for the tests).

Four kernels, one pass over the activation each, for x of shape (N, C, H, W) in float32,
bfloat16 or float16, NCHW or channels_last (any layout whose H and W flatten into one strided
axis), all arithmetic in float32:

    stats        per (n, c): sum (x - s) and sum (x - s)^2 with s = x[n, c, 0, 0] (shifted sums:
                 no cancellation in the variance), or sum x^2 ('nu2')
    affine       z = A[n, c] x + B[n, c], then max(z, tau[c])
    grad_sums    per (n, c): sum g x and sum g with g = gz where A x + B > tau (TLU recomputed
                 from x, so the output is not read), and sum gz for tau's gradient
    input_grad   dx = A g + c1 + c2 x

Each program handles a tile of BLOCK_C channels x BLOCK_HW pixels of one sample; the reductions
split H x W over several programs (partial sums, added by one small torch op) so that small
batches still fill the GPU. The interface is ``TorchOps``' (``normdet.layers._affine``), which is
the reference the tests hold these kernels to.
"""
import torch
import triton
import triton.language as tl

_PROGRAMS = 1024  # reductions: aim for about this many programs


def _layout(x: torch.Tensor):
    """(x, stride_n, stride_c, stride_hw) with H, W as one strided axis."""
    n, c, h, w = x.shape
    if h > 1 and w > 1 and x.stride(2) != w * x.stride(3):
        x = x.contiguous()
    return x, x.stride(0), x.stride(1), x.stride(3) if w > 1 else x.stride(2)


def _blocks(x: torch.Tensor, s_c: int):
    """Tile shape: the contiguous axis long (pixels for NCHW, channels for channels_last)."""
    if s_c == 1:
        return 64, 32
    return 8, 256


@triton.jit
def _channels(C, BLOCK_C: tl.constexpr):
    """This program's sample n and channel block (cs, cmask) from program axis 0."""
    pid = tl.program_id(0)
    n = pid // tl.cdiv(C, BLOCK_C)
    cs = (pid % tl.cdiv(C, BLOCK_C)) * BLOCK_C + tl.arange(0, BLOCK_C)
    return n, cs, cs < C


@triton.jit
def _tile(C, HW, s_n, s_c, s_hw, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """An elementwise kernel's tile: (n, cs, cmask, offsets, mask), pixels from program axis 1."""
    n, cs, cmask = _channels(C, BLOCK_C)
    hw = tl.program_id(1) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    mask = cmask[:, None] & (hw < HW)[None, :]
    return n, cs, cmask, n * s_n + cs[:, None] * s_c + hw[None, :] * s_hw, mask


@triton.jit
def _stats_kernel(x_ptr, s1_ptr, s2_ptr, N, C, HW, s_n, s_c, s_hw, chunk,
                  SHIFT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    n, cs, cmask = _channels(C, BLOCK_C)
    split = tl.program_id(1)
    base = x_ptr + n * s_n + cs * s_c
    shift = tl.zeros([BLOCK_C], dtype=tl.float32)
    if SHIFT:
        shift = tl.load(base, mask=cmask, other=0.).to(tl.float32)
    acc1 = tl.zeros([BLOCK_C, BLOCK_HW], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_C, BLOCK_HW], dtype=tl.float32)
    start = split * chunk
    for off in range(start, start + chunk, BLOCK_HW):
        hw = off + tl.arange(0, BLOCK_HW)
        mask = cmask[:, None] & (hw < HW)[None, :]
        v = tl.load(base[:, None] + hw[None, :] * s_hw, mask=mask, other=0.).to(tl.float32)
        v = tl.where(mask, v - shift[:, None], 0.)
        acc1 += v
        acc2 += v * v
    out = split * N * C + n * C + cs
    tl.store(s1_ptr + out, tl.sum(acc1, axis=1), mask=cmask)
    tl.store(s2_ptr + out, tl.sum(acc2, axis=1), mask=cmask)


@triton.jit
def _affine_kernel(x_ptr, y_ptr, a_ptr, b_ptr, tau_ptr, C, HW, s_n, s_c, s_hw,
                   TLU: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    n, cs, cmask, offs, mask = _tile(C, HW, s_n, s_c, s_hw, BLOCK_C, BLOCK_HW)
    x = tl.load(x_ptr + offs, mask=mask, other=0.).to(tl.float32)
    a = tl.load(a_ptr + n * C + cs, mask=cmask, other=0.)
    b = tl.load(b_ptr + n * C + cs, mask=cmask, other=0.)
    y = x * a[:, None] + b[:, None]
    if TLU:
        tau = tl.load(tau_ptr + cs, mask=cmask, other=0.)
        y = tl.maximum(y, tau[:, None])
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _grad_sums_kernel(g_ptr, x_ptr, a_ptr, b_ptr, tau_ptr, sgx_ptr, sg_ptr, sfull_ptr,
                      N, C, HW, s_n, s_c, s_hw, chunk,
                      TLU: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    n, cs, cmask = _channels(C, BLOCK_C)
    split = tl.program_id(1)
    a = tl.load(a_ptr + n * C + cs, mask=cmask, other=0.)
    b = tl.load(b_ptr + n * C + cs, mask=cmask, other=0.)
    tau = tl.zeros([BLOCK_C], dtype=tl.float32)
    if TLU:
        tau = tl.load(tau_ptr + cs, mask=cmask, other=0.)
    acc_gx = tl.zeros([BLOCK_C, BLOCK_HW], dtype=tl.float32)
    acc_g = tl.zeros([BLOCK_C, BLOCK_HW], dtype=tl.float32)
    acc_full = tl.zeros([BLOCK_C, BLOCK_HW], dtype=tl.float32)
    start = split * chunk
    for off in range(start, start + chunk, BLOCK_HW):
        hw = off + tl.arange(0, BLOCK_HW)
        mask = cmask[:, None] & (hw < HW)[None, :]
        offs = n * s_n + cs[:, None] * s_c + hw[None, :] * s_hw
        x = tl.load(x_ptr + offs, mask=mask, other=0.).to(tl.float32)
        g = tl.load(g_ptr + offs, mask=mask, other=0.).to(tl.float32)
        if TLU:
            acc_full += g
            g = tl.where(x * a[:, None] + b[:, None] > tau[:, None], g, 0.)
        acc_gx += g * x
        acc_g += g
    out = split * N * C + n * C + cs
    tl.store(sgx_ptr + out, tl.sum(acc_gx, axis=1), mask=cmask)
    tl.store(sg_ptr + out, tl.sum(acc_g, axis=1), mask=cmask)
    if TLU:
        tl.store(sfull_ptr + out, tl.sum(acc_full, axis=1), mask=cmask)


@triton.jit
def _input_grad_kernel(g_ptr, x_ptr, dx_ptr, a_ptr, b_ptr, tau_ptr, c1_ptr, c2_ptr,
                       C, HW, s_n, s_c, s_hw, TLU: tl.constexpr, HAS_C1: tl.constexpr,
                       BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    n, cs, cmask, offs, mask = _tile(C, HW, s_n, s_c, s_hw, BLOCK_C, BLOCK_HW)
    x = tl.load(x_ptr + offs, mask=mask, other=0.).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask, other=0.).to(tl.float32)
    a = tl.load(a_ptr + n * C + cs, mask=cmask, other=0.)
    if TLU:
        b = tl.load(b_ptr + n * C + cs, mask=cmask, other=0.)
        tau = tl.load(tau_ptr + cs, mask=cmask, other=0.)
        g = tl.where(x * a[:, None] + b[:, None] > tau[:, None], g, 0.)
    c2 = tl.load(c2_ptr + n * C + cs, mask=cmask, other=0.)
    dx = g * a[:, None] + x * c2[:, None]
    if HAS_C1:
        c1 = tl.load(c1_ptr + n * C + cs, mask=cmask, other=0.)
        dx += c1[:, None]
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _nc32(t: torch.Tensor) -> torch.Tensor:
    return t.float().contiguous()


def _split(n_tiles: int, hw: int, block_hw: int):
    """(programs along H x W, pixels per program) for a reduction over ``n_tiles`` tiles."""
    blocks = triton.cdiv(hw, block_hw)
    split = max(1, min(blocks, triton.cdiv(_PROGRAMS, n_tiles)))
    chunk = triton.cdiv(blocks, split) * block_hw
    return triton.cdiv(hw, chunk), chunk


def stats(x: torch.Tensor, kind: str):
    x, s_n, s_c, s_hw = _layout(x)
    n, c, h, w = x.shape
    hw = h * w
    bc, bhw = _blocks(x, s_c)
    tiles = n * triton.cdiv(c, bc)
    split, chunk = _split(tiles, hw, bhw)
    s1 = torch.empty((split, n, c), device=x.device, dtype=torch.float32)
    s2 = torch.empty_like(s1)
    shift = kind == 'moments'
    _stats_kernel[(tiles, split)](x, s1, s2, n, c, hw, s_n, s_c, s_hw, chunk, SHIFT=shift,
                                  BLOCK_C=bc, BLOCK_HW=bhw)
    if not shift:
        return (s2.sum(0) / hw,)
    d1, d2 = s1.sum(0) / hw, s2.sum(0) / hw
    first = x[:, :, 0, 0].float()
    return first + d1, (d2 - d1.square()).clamp_(min=0)


def affine(x, A, B, tau):
    x, s_n, s_c, s_hw = _layout(x)
    n, c, h, w = x.shape
    y = torch.empty_like(x)
    bc, bhw = _blocks(x, s_c)
    grid = (n * triton.cdiv(c, bc), triton.cdiv(h * w, bhw))
    A, B = _nc32(A), _nc32(B)
    tau_ = _nc32(tau) if tau is not None else A
    _affine_kernel[grid](x, y, A, B, tau_, c, h * w, s_n, s_c, s_hw, TLU=tau is not None,
                         BLOCK_C=bc, BLOCK_HW=bhw)
    return y


def grad_sums(gz, x, A, B, tau):
    x, s_n, s_c, s_hw = _layout(x)
    gz = gz.contiguous(memory_format=torch.channels_last) if s_c == 1 else gz.contiguous()
    if gz.stride() != x.stride():
        gz = torch.empty_like(x).copy_(gz)
    n, c, h, w = x.shape
    hw = h * w
    bc, bhw = _blocks(x, s_c)
    tiles = n * triton.cdiv(c, bc)
    split, chunk = _split(tiles, hw, bhw)
    sgx = torch.empty((split, n, c), device=x.device, dtype=torch.float32)
    sg, sfull = torch.empty_like(sgx), torch.empty_like(sgx)
    A = _nc32(A)
    tlu = tau is not None
    B = _nc32(B) if tlu else A  # read only with TLU
    tau_ = _nc32(tau) if tlu else A
    _grad_sums_kernel[(tiles, split)](gz, x, A, B, tau_, sgx, sg, sfull, n, c, hw, s_n, s_c,
                                      s_hw, chunk, TLU=tlu, BLOCK_C=bc, BLOCK_HW=bhw)
    dB = sg.sum(0)
    dtau = sfull.sum((0, 1)) - dB.sum(0) if tlu else None
    return sgx.sum(0), dB, dtau, gz


def input_grad(gz, x, A, B, tau, c1, c2, aux):
    x, s_n, s_c, s_hw = _layout(x)
    n, c, h, w = x.shape
    dx = torch.empty_like(x)
    bc, bhw = _blocks(x, s_c)
    grid = (n * triton.cdiv(c, bc), triton.cdiv(h * w, bhw))
    A, c2 = _nc32(A), _nc32(c2)
    tlu = tau is not None
    B = _nc32(B) if tlu else A
    tau_ = _nc32(tau) if tlu else A
    c1_ = _nc32(c1) if c1 is not None else A
    _input_grad_kernel[grid](aux, x, dx, A, B, tau_, c1_, c2, c, h * w, s_n, s_c, s_hw,
                             TLU=tlu, HAS_C1=c1 is not None, BLOCK_C=bc, BLOCK_HW=bhw)
    return dx
