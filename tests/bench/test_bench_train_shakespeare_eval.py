"""When train-shakespeare-char evaluates: on its grid, and more often just above the target."""

from tinylm.bench.train_shakespeare import DENSE, NEAR_TARGET, eval_due


def due_steps(losses: dict[int, float], target: float | None, eval_every: int = 50, until: int = 400) -> list[int]:
    """The steps a run evaluates at, when its evaluation at step s gives losses[s] (or, at a
    step not in `losses`, the loss of the evaluation before)."""
    steps, last, reached = [], None, False
    for step in range(1, until + 1):
        if eval_due(step, eval_every, last, target, reached):
            steps.append(step)
            last = losses.get(step, last)
            reached = reached or (target is not None and last <= target)
    return steps


def test_far_from_the_target_only_the_grid_is_evaluated():
    assert due_steps({50: 3.0, 100: 2.5}, target=1.87, until=200) == [50, 100, 150, 200]
    assert due_steps({}, target=None, until=200) == [50, 100, 150, 200]


def test_just_above_the_target_evaluations_come_dense_until_it_is_reached():
    fine = 50 // DENSE
    losses = {50: 2.5, 100: 1.87 + NEAR_TARGET / 2, 100 + fine: 1.88, 100 + 2 * fine: 1.86}
    steps = due_steps(losses, target=1.87, until=250)
    # Dense after step 100 (within NEAR_TARGET), back to the grid once 1.86 <= 1.87 is seen.
    assert steps == [50, 100, 100 + fine, 100 + 2 * fine, 150, 200, 250]


def test_a_loss_more_than_near_target_above_does_not_trigger_dense_evaluations():
    steps = due_steps({50: 1.87 + 2 * NEAR_TARGET}, target=1.87, until=100)
    assert steps == [50, 100]
