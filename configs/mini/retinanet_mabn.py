_base_ = '../_base_/mini_retinanet.py'
norm = 'MABN'
