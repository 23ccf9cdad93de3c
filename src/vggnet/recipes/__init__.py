"""Training recipes as data: small files of settings, each with the reason for it.

Like nanoGPT's ``config/*.py``: a recipe is a dict of ``TrainConfig`` fields (the names
of ``vggnet train``'s flags), read by the code that runs it. ``base`` holds what every
recipe here shares; ``demo`` is ``make demo``; ``grid`` the budgets of ``vggnet
reproduce``; ``gpu`` the nets of ``tools/bench/gpu_accuracy.py``. They live in the
package (not beside it) because the installed ``vggnet demo`` and ``reproduce`` read them.
"""
