"""Evaluation with the paper's test protocols (section 3), from images to tables.

Data flows one way: ``protocols`` (one model's posteriors for decoded images) ->
``classes`` (model outputs to data classes) -> ``scores`` (every image's posteriors,
saved and merged) -> ``analysis`` (errors, shared errors, confusions) -> ``report``
(rows and tables); ``scoring`` runs the whole flow over a data set or image files.
"""
