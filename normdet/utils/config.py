"""The one walker over a nested config (dicts, lists and tuples, as MMEngine's configs nest them).

    for node, path in walk(cfg['model']):          # path: 'model.backbone', 'model.roi_head...'
        if isinstance(node.get('norm_cfg'), dict): ...

Every rewrite of a config (the norm conversion, the data root, the stack fixes) and every reader
of one (the study) goes through it, so that "every component of the config" means the same thing
everywhere.
"""


def walk(node, path: str = 'model'):
    """Yield ``(d, path)`` for every dict ``d`` inside ``node`` (``node`` itself first), depth
    first, ``path`` naming where it is (``model.bbox_head.cls_convs[0]``). A dict may be changed
    in place while walking; its children are read after it is yielded."""
    if isinstance(node, dict):
        yield node, path
        for key, value in list(node.items()):
            yield from walk(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from walk(value, f'{path}[{i}]')
