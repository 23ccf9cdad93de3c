"""What is built on the library: the demo, the paper's grid, named features and transfer.

``features`` (named taps, the perceptual loss) -> ``transfer`` (Appendix B descriptors and
a linear SVM) ; ``demo`` (``make demo``) and ``reproduce`` (Tables 3-6) train and score
with ``vggnet.train`` and ``vggnet.eval``.
"""
