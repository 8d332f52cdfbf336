"""Datasets by name: the packed LMDB reader (lmdb.py) and the real layouts datasets are packed from
(cityscapes.py, ...), each with its synthetic generator. Nothing is imported here, so that the
transforms can read a dataset's label definitions without loading the readers; hbdk_sim.data
imports and registers them."""
