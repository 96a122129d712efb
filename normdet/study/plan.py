"""The study's plan: the parts tools/study.py trains, each a grid of (norm, images per GPU, seed)
runs of one mini config.

The claims (normdet.study.claims) compare cells of these parts: they name the parts through the
constants below, and a test holds that every cell a claim compares is one the full plan trains.
"""
import dataclasses

from ..utils.errors import ConfigError

NORMS = ['BN', 'GN', 'FRN', 'MABN', 'DNB', 'DNC', 'RBN']
SEEDS = [0, 1, 2]
RCNN_SEEDS = [0, 1]  # RetinaNet and Mask R-CNN cost 3x and 8x SSDLite an image on the CPU
DEFAULT_EPOCHS = ['ssdlite=4', 'retinanet=2', 'mask_rcnn=1']  # the 3-hour budget
LR_MULTS = (2, 4)  # the ssdlite_lr<mult>x parts

# The papers' experiment (issue 31): 8 processes of 2 images, so that each batch-statistics norm
# sees its own process's 2 images and the optimizer 16; BN per process is the small-batch baseline.
# The large-batch reference is SyncBN over the 8. On a CPU machine SyncBN's ~150 all-reduces an
# iteration cost 15.5x (docs/performance.md), so the reference part trains its one-process
# equivalent, BN over 16 images in one process: the same batch statistics over an iteration's 16
# images (tests/test_dist_layers.py), the same iterations and LR; each iteration's 16 images are
# one slice of the epoch's permutation in both layouts (mmengine's sampler deals process r the
# indices r, r + 8, ...). What still differs: each process normalises its loss by its own
# positives, and draws its own augmentations. These parts are optional (run only when --parts
# names them): they take days here.
PAPERS_NORMS = ['BN', 'GN', 'FRN', 'MABN', 'DNB', 'DNC', 'RBN']
# The recipe, the same for every norm: PAPERS_RECIPE's --cfg-options and PAPERS_EPOCHS. SSDLite's
# is the recipe screen's choice (docs/study/recipe.md), the mini recipe for 24 epochs (1536
# iterations). The classification prior (model.bbox_head.background_prior=0.75) narrowed the
# reference's spread but kept DN-B near the plateau on a seed in two, so it is not used. The
# RetinaNet and Mask R-CNN schedules have not been screened.
PAPERS_RECIPE = dict(ssdlite=[], retinanet=[], mask_rcnn=[])  # --cfg-options per detector
PAPERS_EPOCHS = dict(ssdlite=24, retinanet=4, mask_rcnn=2)
REF_SEEDS = [0, 1, 2, 3, 4]     # the reference's spread: 5 seeds
CURVE_NORMS = ['BN', 'GN', 'MABN', 'DNB']  # the small-batch curve's (SyncBN's is the reference)
VARIANT_B = '_b'                # the parts on the benchmark's second variant end in it

# the parts' names, as the claims name them
DN_SC_NORMALIZED = 'dn_sc_normalized'
SSDLITE = 'ssdlite'
RETINANET, RETINANET_BN16 = 'retinanet', 'retinanet_bn16'
MASK_RCNN, MASK_RCNN_BN16 = 'mask_rcnn', 'mask_rcnn_bn16'
PAPERS_DETECTORS = ('ssdlite', 'retinanet', 'mask_rcnn')


def papers(detector: str, variant: str = '') -> str:
    """The part of ``detector``'s 8-process runs (``variant``: '' or VARIANT_B)."""
    return f'papers_{detector}{variant}'


def papers_ref(detector: str, variant: str = '') -> str:
    """The part of ``detector``'s large-batch reference (BN over 16 images in one process)."""
    return f'papers_{detector}_ref{variant}'


def ssdlite_lr(mult: int) -> str:
    """The name of the part that trains SSDLite at ``mult`` times the base LR."""
    return f'ssdlite_lr{mult}x'


@dataclasses.dataclass
class Part:
    name: str
    detector: str              # configs/<detector>_<norm>.py
    norms: list
    batch: list
    epochs: int
    seeds: list = dataclasses.field(default_factory=lambda: list(SEEDS))
    options: list = dataclasses.field(default_factory=list)  # --cfg-options of every run
    gpus: int = 1              # processes per run (tools/dist_train.sh over gloo when > 1)
    what: str = ''
    optional: bool = False     # beyond the 3-hour budget: only when --parts names it

    def runs(self):
        """(norm, batch, seed) of each run, seed by seed: every cell's first seed before any
        cell's second, so that a study stopped part-way leaves seeds paired across the norms."""
        return [(n, b, s) for s in self.seeds for n in self.norms for b in self.batch]


def plans(epochs: dict) -> dict:
    """The full plan and CI's smoke plan, with ``epochs`` per mini detector (ssdlite, retinanet,
    mask_rcnn)."""
    ssd, ret, mrc = epochs['ssdlite'], epochs['retinanet'], epochs['mask_rcnn']
    full = [
        # first, so that DN's default SC input can be checked before the DN claims are ruled on
        Part(DN_SC_NORMALIZED, 'mini/ssdlite', ['DNB'], [16], ssd,
             options=['norm_options.layer_args.sc_input=normalized'],
             what="DN-B's SC module on scale-invariant statistics (ablation; against DN-B at "
                  "16/GPU of the ssdlite part, the default raw statistics)"),
        Part(SSDLITE, 'mini/ssdlite', ['DNB'] + [n for n in NORMS if n != 'DNB'], [16, 2], ssd,
             what='SSDLite-MobileNetV2, every norm at 2 and 16 images per GPU'),
        *[Part(ssdlite_lr(mult), 'mini/ssdlite', ['BN', 'DNB'], [16], ssd,
               options=[f'optim_wrapper.optimizer.lr={2e-3 * mult:g}'],
               what=f'SSDLite at {mult}x the base LR (DN-B robustness claim)')
          for mult in LR_MULTS],
        Part('ssdlite_batch', 'mini/ssdlite', NORMS, [4, 8], ssd, optional=True,
             what='SSDLite, the AP-versus-batch curve between 2 and 16'),
        Part('ssdlite_12ep', 'mini/ssdlite', NORMS, [16], 12, seeds=[0], optional=True,
             what="SSDLite at the mini configs' own 12 epochs, one seed (beyond the 3-hour "
                  'budget): how the ranking of the short schedule holds'),
        Part(RETINANET, 'mini/retinanet', NORMS, [2], ret, seeds=RCNN_SEEDS,
             what='RetinaNet-R18, every norm at 2 images per GPU'),
        Part(RETINANET_BN16, 'mini/retinanet', ['BN'], [16], ret, seeds=RCNN_SEEDS,
             what='RetinaNet-R18, BN at 16 images per GPU (the large-batch reference)'),
        Part(MASK_RCNN, 'mini/mask_rcnn', NORMS, [2], mrc, seeds=RCNN_SEEDS,
             what='Mask R-CNN-R18, every norm at 2 images per GPU'),
        Part(MASK_RCNN_BN16, 'mini/mask_rcnn', ['BN'], [16], mrc, seeds=RCNN_SEEDS,
             what='Mask R-CNN-R18, BN at 16 images per GPU (the large-batch reference)'),
    ]
    full += papers_parts() + ablation_parts()
    smoke = [Part('smoke', 'mini/ssdlite', ['BN', 'GN'], [2], 1, seeds=[0],
                  options=['synthetic_data=tiny'],
                  what='CI smoke: two one-epoch runs on 16 images'),
             Part('smoke_dist', 'mini/ssdlite', ['SyncBN', 'BN'], [2], 1, seeds=[0], gpus=2,
                  options=['synthetic_data=tiny'],
                  what="CI smoke of the papers' protocol: 2 processes of 2 images, SyncBN over "
                       'both against BN in each')]
    return dict(full=full, smoke=smoke)


def papers_parts() -> list:
    """The papers' experiment: per detector and benchmark variant, the norms at 8 processes of 2
    and the reference; then the small-batch curve on SSDLite."""
    parts = []
    for det in PAPERS_DETECTORS:
        epochs, seeds, ssd = PAPERS_EPOCHS[det], SEEDS, det == 'ssdlite'
        for variant in ('', VARIANT_B):
            options = PAPERS_RECIPE[det] + (['synthetic_data=benchmark_b'] if variant else [])
            on = " on the benchmark's second variant (benchmark_b)" if variant else ''
            parts += [
                Part(papers(det, variant), f'mini/{det}', PAPERS_NORMS, [2], epochs, seeds=seeds,
                     gpus=8, optional=True, options=options,
                     what=f"{det}, the papers' protocol{on}: 8 processes of 2 images, each "
                          'batch-statistics norm on its own process\'s 2, the optimizer on 16'),
                Part(papers_ref(det, variant), f'mini/{det}', ['BN'] + (['DNB'] if ssd else []),
                     [16], epochs, seeds=REF_SEEDS if ssd and not variant else seeds,
                     optional=True, options=options,
                     what=f'{det}, the large-batch reference{on}: BN over 16 images in one '
                          'process, which computes what SyncBN over 8 processes of 2 does' +
                          (" (and DN-B at 16, the DN paper's claim at a large batch)" if ssd
                           else ''))]
    # AP against images per process at a total batch of 16 (8 of 2: papers_ssdlite)
    ssd, opts = PAPERS_EPOCHS['ssdlite'], PAPERS_RECIPE['ssdlite']
    parts += [Part('curve_1x16', 'mini/ssdlite', ['GN', 'MABN'], [16], ssd, optional=True,
                   options=opts, what='the small-batch curve: 1 process of 16 images (BN and '
                                      'DN-B: papers_ssdlite_ref)'),
              Part('curve_4x4', 'mini/ssdlite', CURVE_NORMS, [4], ssd, gpus=4, optional=True,
                   options=opts, what='the small-batch curve: 4 processes of 4 images'),
              Part('curve_16x1', 'mini/ssdlite', ['GN'], [1], ssd, gpus=16, optional=True,
                   options=opts,
                   what='the small-batch curve: 16 processes of 1 image (GN: the only one of '
                        'the curve\'s norms that normalizes a single image)')]
    return parts


# The anomalies of issue 31, each an ablation part against a cell of the papers' parts
ABLATION_CENCONV = 'ablation_mabn_plain_depthwise'
ABLATION_DNC = 'ablation_dnc_literal'
ABLATION_DNC_INPUT = 'ablation_dnc_normalized_b'  # the second variant: DN-C's 4.2 AP seed
MABN_MOVING = ('forward', 'backward', 'none')  # 'both', the paper's, is papers_retinanet's MABN
GN_PLACEMENTS = ('depthwise', 'pointwise')


def ablation_mabn(moving: str) -> str:
    return f'ablation_mabn_moving_{moving}'


def ablation_gn(placement: str) -> str:
    return f'ablation_gn_{placement}'


def ablation_parts() -> list:
    """The ablations of the anomalies, at the papers' recipe on the benchmark: MABN's moving
    averages one at a time (RetinaNet, 8 x 2, where MABN's loss rose after warmup_iters),
    CenConv without centring MobileNetV2's depthwise convs, DN-C's literal SC module and, on the
    second variant, DN-C's SC module on scale-invariant statistics (SSDLite, 8 x 2), GN after
    the depthwise or the 1x1 convs only (SSDLite, 1 x 16: GN does not depend on the batch, and
    its everywhere-placement is curve_1x16's GN)."""
    ssd, ret = PAPERS_EPOCHS['ssdlite'], PAPERS_EPOCHS['retinanet']
    ssd_opts, ret_opts = PAPERS_RECIPE['ssdlite'], PAPERS_RECIPE['retinanet']
    parts = [Part(ablation_mabn(m), 'mini/retinanet', ['MABN'], [2], ret, gpus=8, optional=True,
                  options=ret_opts + [f'norm_options.layer_args.moving_averages={m}'],
                  what=f"MABN with moving_averages={m!r} (RetinaNet, 8 x 2; against "
                       "papers_retinanet's MABN, which keeps both)") for m in MABN_MOVING]
    parts += [Part(ABLATION_CENCONV, 'mini/ssdlite', ['MABN'], [2], ssd, gpus=8, optional=True,
                   options=ssd_opts + ['norm_options.conv_args.centre_depthwise=False'],
                   what="MABN with MobileNetV2's depthwise convs not weight-centred (SSDLite, "
                        "8 x 2; against papers_ssdlite's MABN, which centres every conv)"),
              Part(ABLATION_DNC, 'mini/ssdlite', ['DNC'], [2], ssd, gpus=8, optional=True,
                   options=ssd_opts + ['norm_options.layer_args.sc_form=literal'],
                   what="DN-C with the paper's literal SC module, which generates the whole "
                        "scale and shift (SSDLite, 8 x 2; against papers_ssdlite's DN-C, the "
                        'residual form, and BN)'),
              Part(ABLATION_DNC_INPUT, 'mini/ssdlite', ['DNC'], [2], ssd, gpus=8, optional=True,
                   options=ssd_opts + ['synthetic_data=benchmark_b',
                                       'norm_options.layer_args.sc_input=normalized'],
                   what="DN-C's SC module on scale-invariant statistics (SSDLite, 8 x 2, on the "
                        "second variant; against papers_ssdlite_b's DN-C, which reads the raw "
                        'batch mean and std and generated scales of 10^4 on its two worst seeds)')]
    parts += [Part(ablation_gn(pl), 'mini/ssdlite', ['GN'], [16], ssd, optional=True,
                   options=ssd_opts + [f'norm_options.placement={pl}'],
                   what=f"GN after MobileNetV2's {pl} convs only, BN after the rest (SSDLite, "
                        "1 x 16; against curve_1x16's GN everywhere)") for pl in GN_PLACEMENTS]
    return parts


def epochs_of(specs) -> dict:
    """``['ssdlite=4', ...]`` (tools/study.py's --epochs) as ``{'ssdlite': 4, ...}``; a detector
    not named keeps its default (``DEFAULT_EPOCHS``)."""
    out = {k: int(v) for k, v in (kv.split('=') for kv in DEFAULT_EPOCHS)}
    for spec in specs:
        detector, _, n = str(spec).partition('=')
        if detector not in out or not n.isdigit() or int(n) < 1:
            raise ConfigError(f'--epochs takes DETECTOR=N, N a positive integer, for '
                              f'{", ".join(out)}; got {spec!r}')
        out[detector] = int(n)
    return out
