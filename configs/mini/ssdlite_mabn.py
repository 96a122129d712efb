_base_ = '../_base_/mini_ssdlite.py'
norm = 'MABN'
