"""The names of COCO's metrics, as normdet's COCO metric returns them and the reports read them."""

# COCOeval's 12 summary numbers (mmdet's key names for the six AP)
SUMMARY = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l',
           'AR@1', 'AR@10', 'AR@100', 'AR_s@100', 'AR_m@100', 'AR_l@100')
# the per-class columns
PER_CLASS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')
TASKS = ('bbox', 'segm')
