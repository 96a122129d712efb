"""Check a COCO-format dataset before training on it: its annotation files and every image.

    python tools/check_data.py DATA_ROOT [--split ANN_FILE IMG_DIR ...] [--no-images]

By default the COCO layout: annotations/instances_train2017.json with train2017/, and
annotations/instances_val2017.json with val2017/. Lists every problem that would stop a run
(exit status 1) and counts what mmdet would drop; training runs the same checks
(``normdet.data.validate``), cached by the files' sizes and modification times.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import parse_tool_args  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402
from normdet.data import check_coco  # noqa: E402
from normdet.data.validate import validate_coco, warning_line  # noqa: E402
from normdet.utils.errors import DataError  # noqa: E402

COCO = [('annotations/instances_train2017.json', 'train2017/'),
        ('annotations/instances_val2017.json', 'val2017/')]


def main(argv=None):
    p = argparse.ArgumentParser(description='Check a COCO-format dataset')
    p.add_argument('data_root')
    p.add_argument('--split', nargs=2, action='append', metavar=('ANN_FILE', 'IMG_DIR'),
                   help='an annotation file and its image folder, relative to DATA_ROOT '
                        '(repeatable; default: COCO\'s train2017 and val2017)')
    p.add_argument('--no-images', action='store_true', help='check the annotation files only')
    args = parse_tool_args(p, argv, config=False)
    problems = []
    for ann_file, img_dir in args.split or COCO:
        check_coco(args.data_root, ann_file, img_dir)
        train = 'train' in osp.basename(ann_file)
        try:
            result = validate_coco(args.data_root, ann_file, img_dir, trained=train,
                                   images=not args.no_images)
        except DataError as e:
            problems.append(str(e))
            continue
        line = warning_line(result)
        print(f'[normdet] {ann_file}: ok' + (' (checked before: cached)' if result['cached']
                                             else '') + (f'\n[normdet] warning: {line}'
                                                         if line else ''), flush=True)
    if problems:
        raise DataError('\n[normdet] error: '.join(problems))


if __name__ == '__main__':
    run_tool(main)
