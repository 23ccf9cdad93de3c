"""The learning-rate schedules, top-k errors and metric log, against hand-worked cases."""

import time

import pytest
import torch

from vggnet.metrics import confusion_matrix, error_percent, top1_predictions, top_k_correct
from vggnet.schedule import LinearSchedule, PlateauSchedule


def test_plateau_divides_by_ten_three_times_then_stops():
    schedule = PlateauSchedule(lr=0.01, patience=2)
    errors = [50, 40, 41, 40.5, 39, 39, 39, 39, 39, 38, 38, 38, 38]
    actions = [schedule.step(e) for e in errors]
    # a new best resets the count; two epochs in a row without one trigger an action
    expected = [None, None, None, "decrease", None, None, "decrease", None, "decrease"]
    assert actions == [*expected, None, None, "stop", None]
    assert abs(schedule.lr - 1e-5) < 1e-12 and schedule.decreases == 3 and schedule.finished


def test_plateau_by_hand():
    schedule = PlateauSchedule(lr=1.0, patience=2, threshold=0.5)
    assert schedule.step(10.0) is None  # best 10
    assert schedule.step(9.8) is None  # not 0.5 better: bad epoch 1
    assert schedule.step(9.7) == "decrease"  # bad epoch 2 -> lr 0.1
    assert schedule.lr == 0.1 and schedule.bad_epochs == 0
    assert schedule.step(9.0) is None  # 1.0 better than 10: new best
    state = schedule.state_dict()
    restored = PlateauSchedule(lr=5.0)
    restored.load_state_dict(state)
    assert restored == schedule


def test_linear_by_hand():
    schedule = LinearSchedule(lr=1.0, total_steps=10, warmup_steps=4)
    rates = [schedule.lr_at(step) for step in range(12)]
    assert rates == pytest.approx(
        [0.25, 0.5, 0.75, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0, 0]
    )
    assert [LinearSchedule(2.0, 4).lr_at(s) for s in range(4)] == [2.0, 1.5, 1.0, 0.5]
    assert schedule.step(3.0) is None and not schedule.finished and schedule.state_dict() == {}


def test_top_k_by_hand_with_ties():
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # label 1: top-1
            [0.5, 0.2, 0.3, 0.0, 0.0, 0.0],  # label 2: rank 2 -> top-5 only
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # label 0, all tied: rank 6 -> wrong even in top-5
            [0.3, 0.3, 0.1, 0.1, 0.1, 0.1],  # label 1 tied with class 0 for first: wrong at top-1
        ]
    )
    labels = torch.tensor([1, 2, 0, 1])
    assert top_k_correct(scores, labels, (1, 5)) == [1, 3]
    assert error_percent(1, 4) == 75.0


def test_top_5_on_three_classes_is_always_right():
    scores = torch.randn(7, 3)
    labels = torch.randint(0, 3, (7,))
    assert top_k_correct(scores, labels, (5,)) == [7]
    assert error_percent(7, 7) == 0.0


def test_confusion_matrix_by_hand_counts_a_tie_with_the_label_as_an_error():
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.0],  # label 1, right
            [0.5, 0.2, 0.3],  # label 2, taken for 0
            [0.0, 0.0, 0.0],  # label 0, all tied: taken for another class (the first, 1)
            [0.4, 0.4, 0.2],  # label 1 tied with 0: taken for 0, as top_k_correct counts it
        ]
    )
    labels = torch.tensor([1, 2, 0, 1])
    assert top1_predictions(scores, labels).tolist() == [1, 0, 1, 0]
    matrix = confusion_matrix(scores, labels)
    assert matrix.tolist() == [[0, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert int(matrix.diagonal().sum()) == top_k_correct(scores, labels, (1,))[0]


def test_confusion_matrix_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(500, 7, generator=generator)
    labels = torch.randint(0, 7, (500,), generator=generator)
    expected = metrics.confusion_matrix(labels.numpy(), scores.argmax(1).numpy(), labels=range(7))
    assert confusion_matrix(scores, labels).tolist() == expected.tolist()


def test_a_resume_purges_the_killed_runs_later_steps_from_tensorboard(tmp_path):
    """TensorBoard, read by its own loader, shows each step once: the resumed run's value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vggnet.metrics import MetricsLog

    killed = MetricsLog(tmp_path)
    for step in range(1, 6):
        killed.write({"kind": "step", "step": step, "loss": 99.0})
    killed.close()
    time.sleep(1.1)  # event files sort by the second they were opened in
    resumed = MetricsLog(tmp_path, resume_step=3)
    for step in range(4, 7):
        resumed.write({"kind": "step", "step": step, "loss": float(step)})
    resumed.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("step/loss")]
    assert logged == [(1, 99.0), (2, 99.0), (3, 99.0), (4, 4.0), (5, 5.0), (6, 6.0)]
