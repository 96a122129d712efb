# Revisited BN (Davis & Frank): BN scale initialised to 0.1, its LR divided by 100 and no weight
# decay on norms and biases (RBNOptimWrapperConstructor), online input BN instead of mean/std.
_base_ = './_base_/retinanet_r50_fpn.py'
norm = 'RBN'
