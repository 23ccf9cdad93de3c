"""The older home of the test protocols: ``vggnet.eval`` holds them now.

Kept so that ``from vggnet.evaluate import ...`` goes on working; new code imports from
``vggnet.eval`` (``protocols``, ``classes``, ``scores``, ``analysis``, ``report``, ``scoring``).
"""

from vggnet.eval.analysis import (  # noqa: F401
    class_errors,
    format_class_errors,
    format_shared_errors,
    shared_errors,
    top_errors,
)
from vggnet.eval.classes import (  # noqa: F401
    check_classes,
    label_map,
)
from vggnet.eval.protocols import (  # noqa: F401
    METHODS,
    PARTS,
    Protocol,
    ScoredModel,
    _forward,
    center_posteriors,
    dense_posteriors,
    group_by_size,
    load_models,
    model_scales,
    multicrop_posteriors,
    part_posteriors,
    prepare,
)
from vggnet.eval.report import (  # noqa: F401
    _scales_text,
    format_results,
    result_row,
)
from vggnet.eval.scores import (  # noqa: F401
    SCORES_FORMAT,
    Scores,
    gather_scores,
    join_parts,
    merge_scores,
    save_scores,
)
from vggnet.eval.scoring import (  # noqa: F401
    evaluate_checkpoints,
    predict_images,
    score_images,
)
from vggnet.model import fold_batch_norm  # noqa: F401  (the old module imported it too)

errors = top_errors  # the old name, before it was told apart from vggnet.errors
