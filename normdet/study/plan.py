"""The study's plan: the parts tools/study.py trains, each a grid of (norm, images per GPU, seed)
runs of one mini config.

The claims (normdet.study.claims) compare cells of these parts: they name the parts through the
constants below, and a test holds that every cell a claim compares is one the full plan trains.
"""
import dataclasses

NORMS = ['BN', 'GN', 'FRN', 'MABN', 'DNB', 'DNC', 'RBN']
SEEDS = [0, 1, 2]
RCNN_SEEDS = [0, 1]  # RetinaNet and Mask R-CNN cost 3x and 8x SSDLite an image on the CPU
DEFAULT_EPOCHS = ['ssdlite=4', 'retinanet=2', 'mask_rcnn=1']  # the 3-hour budget
LR_MULTS = (2, 4)  # the ssdlite_lr<mult>x parts

# The papers' experiment (issue 31): 8 processes of 2 images, so that each batch-statistics norm
# sees its own process's 2 images and the optimizer 16; SyncBN over the 8 is the large-batch
# reference, BN per process the small-batch baseline. PAPERS_RECIPE: the --cfg-options of the
# recipe chosen by the recipe screen (docs/study/recipe.md), the same for every norm; until it is
# chosen these parts are optional (run only when --parts names them).
PAPERS_NORMS = ['SyncBN', 'BN', 'GN', 'FRN', 'MABN', 'DNB', 'DNC', 'RBN']
PAPERS_RECIPE = []
PAPERS_EPOCHS = dict(ssdlite=12, retinanet=4, mask_rcnn=2)
CURVE_NORMS = ['BN', 'SyncBN', 'GN', 'MABN', 'DNB']  # the small-batch curve's

# the parts' names, as the claims name them
DN_SC_NORMALIZED = 'dn_sc_normalized'
SSDLITE = 'ssdlite'
RETINANET, RETINANET_BN16 = 'retinanet', 'retinanet_bn16'
MASK_RCNN, MASK_RCNN_BN16 = 'mask_rcnn', 'mask_rcnn_bn16'


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
        return [(n, b, s) for n in self.norms for b in self.batch for s in self.seeds]


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
    papers = dict(gpus=8, optional=True, options=PAPERS_RECIPE)
    full += [
        Part('papers_ssdlite', 'mini/ssdlite', PAPERS_NORMS, [2], PAPERS_EPOCHS['ssdlite'],
             **papers, what="SSDLite, the papers' protocol: 8 processes of 2 images (the "
                            'optimizer sees 16); SyncBN over the 8 is the large-batch reference'),
        Part('papers_ssdlite_ref', 'mini/ssdlite', ['SyncBN'], [2], PAPERS_EPOCHS['ssdlite'],
             seeds=[3, 4], **papers, what="the reference's seeds 3 and 4 (its spread over 5)"),
        Part('papers_ssdlite_b', 'mini/ssdlite', PAPERS_NORMS, [2], PAPERS_EPOCHS['ssdlite'],
             gpus=8, optional=True, options=PAPERS_RECIPE + ['synthetic_data=benchmark_b'],
             what="papers_ssdlite on the benchmark's second variant (benchmark_b): a claim is "
                  'reproduced only where it holds on both'),
        Part('papers_retinanet', 'mini/retinanet', PAPERS_NORMS, [2],
             PAPERS_EPOCHS['retinanet'], **papers,
             what="RetinaNet-R18, the papers' protocol (8 processes of 2)"),
        Part('papers_mask_rcnn', 'mini/mask_rcnn', PAPERS_NORMS, [2],
             PAPERS_EPOCHS['mask_rcnn'], **papers,
             what="Mask R-CNN-R18, the papers' protocol (8 processes of 2)"),
        # the small-batch curve: AP against images per process at a total batch of 16 (1 process
        # of 16 is the ssdlite part's batch 16 at the same recipe, 8 of 2 papers_ssdlite)
        Part('curve_4x4', 'mini/ssdlite', CURVE_NORMS, [4], PAPERS_EPOCHS['ssdlite'],
             gpus=4, optional=True, options=PAPERS_RECIPE,
             what='the small-batch curve: 4 processes of 4 images'),
        Part('curve_16x1', 'mini/ssdlite', ['SyncBN', 'GN'], [1], PAPERS_EPOCHS['ssdlite'],
             gpus=16, optional=True, options=PAPERS_RECIPE,
             what='the small-batch curve: 16 processes of 1 image (the norms that allow it)'),
    ]
    smoke = [Part('smoke', 'mini/ssdlite', ['BN', 'GN'], [2], 1, seeds=[0],
                  options=['synthetic_data=tiny'],
                  what='CI smoke: two one-epoch runs on 16 images'),
             Part('smoke_dist', 'mini/ssdlite', ['SyncBN', 'BN'], [2], 1, seeds=[0], gpus=2,
                  options=['synthetic_data=tiny'],
                  what="CI smoke of the papers' protocol: 2 processes of 2 images, SyncBN over "
                       'both against BN in each')]
    return dict(full=full, smoke=smoke)


def epochs_of(specs) -> dict:
    """``['ssdlite=4', ...]`` (tools/study.py's --epochs) as ``{'ssdlite': 4, ...}``."""
    return {k: int(v) for k, v in (kv.split('=') for kv in specs)}
