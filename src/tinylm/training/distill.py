"""Knowledge distillation: a small student learns from a trained teacher's whole distribution.

For every target token (a position whose label is not IGNORE_INDEX = -100: padding and
prompt tokens of paired data are left out of both terms), with student logits s, teacher
logits t, hard label y and temperature T:

    loss = alpha * CE(s, y) + (1 - alpha) * T^2 * KL( softmax(t / T) || softmax(s / T) )

    CE(s, y)  = -log softmax(s)[y]                                   the usual next-token loss
    KL(p || q) = sum_v p_v * (log p_v - log q_v)                     over the vocabulary

both averaged over the target tokens of the batch. The temperature softens both
distributions, so the teacher's ranking of the wrong tokens (which answers it finds
almost right) carries signal; the gradient of the KL term scales as 1 / T^2, and the T^2
factor (Hinton et al., 2015) keeps its size comparable to the CE term's whatever T is.
alpha = 1 is plain training on the labels; alpha = 0 is pure imitation of the teacher.

The teacher is frozen: eval mode (no dropout), no gradients, its logits computed under
torch.no_grad. `DistillationObjective` plugs the loss into the Trainer (its `objective`
hook), so a distillation run is an ordinary run: same data, schedule, checkpoints and logs;
its validation loss is still the student's own cross-entropy on the labels.

    student = distill(teacher, student_config, train_data, val_data, tokenizer=tok, cfg=TrainConfig(...))

`tinylm distill` (training/distill_run.py) builds the data from the teacher's checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from tinylm.config import ModelConfig
from tinylm.errors import TinyLMError
from tinylm.model import GPT
from tinylm.training.config import TrainConfig

IGNORE_INDEX = -100


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.5,
    temperature: float = 2.0,
) -> torch.Tensor:
    """The module docstring's loss, averaged over the target tokens (targets != -100).

    student_logits, teacher_logits: (..., V); targets: (...). Computed in float32."""
    check_settings(alpha, temperature)
    vocab = student_logits.size(-1)
    if teacher_logits.size(-1) != vocab:
        raise TinyLMError(f"teacher and student vocabularies differ ({teacher_logits.size(-1)} vs {vocab} tokens)")
    keep = targets.reshape(-1) != IGNORE_INDEX
    s = student_logits.reshape(-1, vocab)[keep].float()
    if s.shape[0] == 0:  # nothing to learn from: a zero that still belongs to the graph
        return student_logits.sum() * 0.0
    t = teacher_logits.reshape(-1, vocab)[keep].float()
    y = targets.reshape(-1)[keep]
    ce = F.cross_entropy(s, y)
    log_p_teacher = F.log_softmax(t / temperature, dim=-1)
    log_p_student = F.log_softmax(s / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean()
    return alpha * ce + (1.0 - alpha) * temperature**2 * kl


def check_settings(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise TinyLMError(f"alpha must be between 0 and 1, got {alpha}")
    if not temperature > 0.0:
        raise TinyLMError(f"temperature must be positive, got {temperature}")


def freeze(teacher: GPT) -> GPT:
    """The teacher as distillation needs it: eval mode (no dropout), no gradients."""
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


class DistillationObjective:
    """The Trainer's objective hook (trainer.Objective): the student's loss against the teacher."""

    def __init__(self, teacher: GPT, alpha: float = 0.5, temperature: float = 2.0) -> None:
        check_settings(alpha, temperature)
        self.teacher, self.alpha, self.temperature = freeze(teacher), alpha, temperature

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.alpha == 1.0:
            # Labels only: the teacher's term weighs nothing, so its forward pass would only cost
            # time (a baseline trained on the same time budget gets those steps).
            return model(x, y)[1]
        with torch.no_grad():
            teacher_logits, _ = self.teacher(x)
        student_logits, _ = model(x)
        return distillation_loss(student_logits, teacher_logits, y, self.alpha, self.temperature)


@torch.no_grad()
def mean_kl(teacher: GPT, student: GPT, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """KL(teacher || student) at temperature 1 per target token over `batches`: how far the
    student's next-token distributions are from the teacher's (0 = the same model)."""
    was_training = student.training
    student.eval()
    total, count = 0.0, 0
    try:
        for x, y in batches:
            keep = y.reshape(-1) != IGNORE_INDEX
            t = teacher(x)[0].reshape(-1, teacher.config.vocab_size)[keep].float()
            s = student(x)[0].reshape(-1, student.config.vocab_size)[keep].float()
            log_t, log_s = F.log_softmax(t, -1), F.log_softmax(s, -1)
            total += float((log_t.exp() * (log_t - log_s)).sum())
            count += int(keep.sum())
    finally:
        student.train(was_training)
    if count == 0:
        raise TinyLMError("no target tokens to compare the student and teacher on")
    return total / count


def check_student(teacher: GPT, student_config: ModelConfig) -> None:
    """The student must read the teacher's tokens: same vocabulary size."""
    if student_config.vocab_size != teacher.config.vocab_size:
        raise TinyLMError(f"the student's vocabulary ({student_config.vocab_size} tokens) differs from the teacher's "
                          f"({teacher.config.vocab_size}); a student uses its teacher's tokenizer")


def distill(
    teacher: GPT,
    student: GPT | ModelConfig,
    train_data: Any,
    val_data: Any = None,
    *,
    tokenizer: Any,
    cfg: TrainConfig,
    alpha: float = 0.5,
    temperature: float = 2.0,
    callbacks: Sequence[Any] = (),
    quiet: bool = True,
) -> GPT:
    """Train `student` (a built GPT, trained in place, or a config: a new GPT seeded with cfg.seed)
    on `train_data` (anything with get_batch) against the frozen `teacher`; the Trainer writes
    its run into cfg.out_dir (last/, best/, logs). Returns the trained student."""
    from tinylm.training.trainer import Trainer

    check_student(teacher, student if isinstance(student, ModelConfig) else student.config)
    if isinstance(student, ModelConfig):
        torch.manual_seed(cfg.seed)
        student = GPT(student)
    Trainer(student, train_data, val_data, cfg, tokenizer, callbacks=callbacks, quiet=quiet,
            objective=DistillationObjective(teacher, alpha, temperature)).fit()
    return student
