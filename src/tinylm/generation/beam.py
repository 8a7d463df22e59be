"""Beam search: keep the num_beams best partial sequences instead of one.

Deterministic, and the same rules as Hugging Face's default (early_stopping=False):
- each step, every beam's log-probs are added to its score and, per prompt, the best
  max(2, 1 + #stop tokens) * K continuations over all K beams are ranked;
- a continuation ending in a stop token becomes a finished hypothesis, scored
  sum(log p) / length**length_penalty (length counts the stop token), but only if it ranks
  among the top K; the best K other continuations are the next beams;
- a prompt is done once it has K hypotheses and its best running beam, normalized at the
  current length, cannot beat the worst of them; at max_new_tokens the top K
  continuations all become hypotheses (finish_reason "length").
The result per prompt is its best hypothesis. All B * K beams share one batch; after each
step the cache rows are reordered (copied) to follow their parents.
"""

from __future__ import annotations

import torch

from tinylm.generation.config import GenerationConfig
from tinylm.generation.incremental_text import IncrementalText
from tinylm.generation.prefill import prefill
from tinylm.generation.processor import LogitsProcessor
from tinylm.generation.result import GenerationResult
from tinylm.generation.rows import TokenHistory, mask_rows
from tinylm.model import GPT
from tinylm.tokenizers import Tokenizer

NEG_INF = float("-inf")

_Hypothesis = tuple[float, list[int], str]  # (normalized score, tokens, finish_reason)


@torch.inference_mode()
def beam_search(
    model: GPT,
    prompts: list[list[int]],
    config: GenerationConfig,
    *,
    stop_token_ids: frozenset[int] = frozenset(),
    tokenizer: Tokenizer | None = None,
    processor: LogitsProcessor | None = None,
) -> list[GenerationResult]:
    K, B = config.num_beams, len(prompts)
    lp = config.length_penalty
    width = max(map(len, prompts))
    max_new = min(config.max_new_tokens, model.config.block_size - width + 1)  # see prefill.py
    cache, logits = prefill(model, prompts, width + max_new - 1)
    device, V = logits.device, logits.shape[-1]
    # Each prompt becomes K rows; only the first is live at the start, or the first step
    # would pick the same token K times.
    expand = torch.arange(B, device=device).repeat_interleave(K)
    cache.reorder(expand)
    logits = logits[expand]
    scores = [0.0 if r % K == 0 else NEG_INF for r in range(B * K)]
    beams: list[list[int]] = [[] for _ in range(B * K)]
    hyps: list[list[_Hypothesis]] = [[] for _ in range(B)]
    dead_ends: dict[int, list[int]] = {}  # prompt -> tokens, for prompts where nothing was allowed
    done = [False] * B
    history = TokenHistory()
    history.add([prompts[r // K] for r in range(B * K)], config, V, device)
    n_candidates = min(max(2, 1 + len(stop_token_ids)) * K, K * V)

    for step in range(max_new):
        length = step + 1  # tokens generated once this step's token is appended
        before_mask = list(scores)
        if processor is not None:
            logits = _mask(processor, logits, scores, beams, hyps, done, K, lp)
        logits = history.penalize(logits, config)
        total = torch.log_softmax(logits.float(), dim=-1) + torch.tensor(scores, device=device)[:, None]
        top_scores, top_ids = total.view(B, K * V).topk(n_candidates, dim=-1)
        last = step == max_new - 1
        parents, tokens, new_scores = [], [], []
        for b, (row_scores, row_ids) in enumerate(zip(top_scores.tolist(), top_ids.tolist())):
            chosen: list[tuple[int, int, float]] = []
            if not done[b]:
                for rank, (s, flat) in enumerate(zip(row_scores, row_ids)):
                    if s == NEG_INF:
                        break
                    parent, token = b * K + flat // V, flat % V
                    if token in stop_token_ids or last:
                        if rank < K:
                            reason = "stop" if token in stop_token_ids else "length"
                            _add(hyps[b], K, (s / length**lp, beams[parent] + [token], reason))
                        continue
                    chosen.append((parent, token, s))
                    if len(chosen) == K:
                        break
                if not chosen:
                    done[b] = True
                    if not hyps[b]:
                        best = max(range(b * K, b * K + K), key=lambda r: before_mask[r])
                        dead_ends[b] = beams[best]
                elif len(hyps[b]) == K and chosen[0][2] / length**lp <= hyps[b][-1][0]:
                    done[b] = True
            # Rows of finished prompts, or beyond the live continuations, are placeholders:
            # score -inf, so nothing they compute is ever chosen.
            chosen += [(b * K, 0, NEG_INF)] * (K - len(chosen))
            for parent, token, s in chosen:
                parents.append(parent)
                tokens.append(token)
                new_scores.append(s)
        if last or all(done):
            break
        index = torch.tensor(parents, device=device)
        cache.reorder(index)
        beams = [beams[p] + [t] for p, t in zip(parents, tokens)]
        scores = new_scores
        new_tokens = torch.tensor(tokens, device=device)
        history.keep(index)
        history.record(new_tokens)
        if processor is not None:
            processor.reorder(range(B * K), parents)
            for r, (t, s) in enumerate(zip(tokens, scores)):
                if s != NEG_INF:
                    processor.advance(r, t)
        out, _ = model(new_tokens[:, None], cache=cache, last_only=True)
        logits = out[:, -1]

    results = []
    for b, prompt in enumerate(prompts):
        if hyps[b]:
            score, ids, reason = hyps[b][0]
        else:
            score, ids, reason = None, dead_ends.get(b, []), "no_valid_token"
        text = None
        if tokenizer is not None:
            text_ids = ids[:-1] if reason == "stop" and ids and ids[-1] in stop_token_ids else ids
            row_text = IncrementalText(tokenizer)
            for t in text_ids:
                row_text.add(t)
            row_text.finish()
            text = row_text.text
        results.append(GenerationResult(ids, text, reason, len(prompt), score))
    return results


def _add(hyps: list[_Hypothesis], K: int, hyp: _Hypothesis) -> None:
    """Keep the K best hypotheses, best first."""
    hyps.append(hyp)
    hyps.sort(key=lambda h: h[0], reverse=True)
    del hyps[K:]


def _mask(
    processor: LogitsProcessor, logits: torch.Tensor, scores: list[float], beams: list[list[int]],
    hyps: list[list[_Hypothesis]], done: list[bool], K: int, lp: float,
) -> torch.Tensor:
    """Let the processor mask the live beams. A beam it calls complete becomes a hypothesis
    ("stop"); a beam it allows nothing is dropped. Both get score -inf (updated in `scores`)."""
    live = []
    for r, s in enumerate(scores):
        if s == NEG_INF or done[r // K]:
            continue
        if processor.is_finished(r):
            _add(hyps[r // K], K, (s / max(len(beams[r]), 1) ** lp, beams[r], "stop"))
            scores[r] = NEG_INF
        else:
            live.append(r)
    if not live:
        return logits
    index = torch.tensor(live, device=logits.device)
    for d in mask_rows(processor, logits, live, [beams[r] for r in live], index):
        scores[live[d]] = NEG_INF
    # Rows with score -inf get finite logits so log_softmax stays finite (NaN would win topk).
    dead = torch.tensor([s == NEG_INF for s in scores], device=logits.device)
    return logits.masked_fill(dead[:, None], 0.0)
