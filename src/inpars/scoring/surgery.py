"""BERT last-layer surgery: compute a cross-encoder's last layer at the [CLS] position only.

The pooler and the classification head read nothing but the first position of the last layer, so the
query projection, attention output and feed-forward block of that layer need run on one position; keys
and values still come from every position, so the function is the same (scores agree within float
rounding, checked by the tests against the unmodified model).
"""

from __future__ import annotations

from typing import Any


def first_token_layer(layer: Any) -> Any:
    """A stand-in for the last layer of a BERT encoder that computes its output at the first ([CLS])
    position only."""
    import torch

    class FirstTokenLayer(torch.nn.Module):
        def __init__(self, layer: Any) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
            layer, sa = self.layer, self.layer.attention.self
            b = hidden_states.shape[0]
            first = hidden_states[:, :1]

            def heads(x: Any) -> Any:
                return x.view(b, x.shape[1], sa.num_attention_heads, sa.attention_head_size).transpose(1, 2)

            mask = attention_mask
            if mask is not None and mask.dim() == 4:  # (batch, 1, query, key): keep the first query row
                mask = mask[:, :, :1, :]
            context = torch.nn.functional.scaled_dot_product_attention(
                heads(sa.query(first)), heads(sa.key(hidden_states)), heads(sa.value(hidden_states)),
                attn_mask=mask, scale=sa.scaling,
            )
            attended = layer.attention.output(context.transpose(1, 2).reshape(b, 1, -1), first)
            return layer.output(layer.intermediate(attended), attended)

    return FirstTokenLayer(layer)


def prune_last_layer(model: Any) -> bool:
    """Make a BERT cross-encoder's last layer compute the [CLS] position only (:func:`first_token_layer`):
    the same scores within float rounding, for less work per pair. Applied to
    ``BertForSequenceClassification`` in eval mode without decoder or cross-attention options; any other
    model is left alone. Returns whether it was applied."""
    config = model.config
    if (
        type(model).__name__ != "BertForSequenceClassification"
        or model.training
        or config.is_decoder
        or getattr(config, "add_cross_attention", False)
        or getattr(config, "chunk_size_feed_forward", 0)
        or config._attn_implementation not in ("sdpa", "eager")
    ):
        return False
    layers = model.bert.encoder.layer
    if not hasattr(layers[-1], "attention"):  # already replaced, or an unknown layout
        return False
    layers[-1] = first_token_layer(layers[-1])
    return True
