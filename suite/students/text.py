"""Text-classification students and the MiniLM classifier used as the teacher to fine-tune.

Every text model here has the same forward contract, so a Distiller can pair any student with any teacher::

    forward(input_ids, attention_mask, token_type_ids=None) -> {
        "logits": (B, C),
        "pooled": (B, D),                   # masked mean of the last hidden state
        "hidden_states": ((B, T, D), ...),  # embeddings output, then one per layer (HF convention: layers + 1)
    }

and carries a ``.tokenizer`` so callers tokenise with the vocabulary the embedding was sized for.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from suite import hub
from suite.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first so pad_id is 0
# Above this a tokenizer's model_max_length is a "no limit" sentinel, not a length to size positions for.
_MAX_POSITIONS = 4096


def count_parameters(module: nn.Module) -> int:
    """Number of parameters, tied parameters counted once (see :func:`suite.eval.efficiency.parameter_count`)."""
    from suite.eval.efficiency import parameter_count

    return parameter_count(module)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: sum_t m_t h_t / max(1, sum_t m_t). (B, T, D), (B, T) -> (B, D)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class EncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer (BERT layout): x = LN(x + MHA(x)); x = LN(x + FFN(x)).

    Attention is written out, softmax(Q K^T / sqrt(d_h) + mask) V, instead of using ``nn.MultiheadAttention``:
    the TorchScript ONNX exporter bakes MHA's (T, B*H, d_h) reshapes into constants, so an exported graph would
    only accept the sequence length it was traced with. Here every reshape keeps the batch and time axes symbolic.
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5  # (B, H, T, T)
        scores = scores.masked_fill(padding[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = self.dropout(scores.softmax(dim=-1))
        return self.out((weights @ v).transpose(1, 2).flatten(2))  # (B, T, D)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.attn_norm(x + self.dropout(self.attention(x, padding)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


def second_segment(input_ids: torch.Tensor, sep_id: int) -> torch.Tensor:
    """1 for the tokens after the first ``[SEP]`` (the second text of a pair), else 0; the ``[SEP]`` itself is 0."""
    is_sep = (input_ids == sep_id).long()
    return ((is_sep.cumsum(dim=1) - is_sep) > 0).long()


def matched_pieces(input_ids: torch.Tensor, attention_mask: torch.Tensor, sep_id: int) -> torch.Tensor:
    """1 for a token of one text of a pair whose piece also occurs in the other text, else 0 (special tokens and
    padding are 0): the exact-match feature of reading-comprehension models (DrQA, Chen et al. 2017). (B, T).

    ``sep_id`` is never a match: it closes both texts. Neither are ids below ``len(SPECIAL_TOKENS)``, where
    :func:`build_vocab_tokenizer` puts its special tokens (in BERT's vocabulary they are [PAD] and unused pieces)."""
    segment = second_segment(input_ids, sep_id)
    piece = attention_mask.bool() & (input_ids >= len(SPECIAL_TOKENS)) & (input_ids != sep_id)
    same = input_ids[:, :, None] == input_ids[:, None, :]  # (B, T, T)
    across = segment[:, :, None] != segment[:, None, :]
    return ((same & across & piece[:, None, :]).any(dim=-1) & piece).long()


class TinyTextClassifier(nn.Module):
    """A sub-1M-parameter Transformer classifier for distilling a fine-tuned encoder.

    Following Latif et al. (2024, "Knowledge distillation of LLMs for automatic scoring of science assessments"),
    the student is a tiny network trained on teacher soft labels: token + learned position embeddings,
    ``layers`` post-norm encoder layers, masked mean pooling and a linear head. At the defaults with an 8k
    WordPiece vocabulary it has about 0.6M parameters, most of them in the embedding.

    Exports to ONNX with dynamic batch and sequence axes: the padding mask is explicit (``masked_fill`` on the
    attention scores) and there are no nested tensors or fused attention kernels.

    ``sep_id``: for pairs (``[CLS] a [SEP] b [SEP]``), a two-row segment embedding marks the tokens after the first
    ``[SEP]`` as the second text, as BERT's token types do; the segment is read off ``input_ids``, so the exported
    graph keeps its two inputs. Without it the student must tell a reference from an answer by position alone.

    ``exact_match`` (pairs only): a second two-row embedding marks each token whose piece also occurs in the other
    text (:func:`matched_pieces`), so that "the answer says what the reference says" is an input, not something a
    sub-1M model must learn per question from a few graded answers. Read off ``input_ids`` too.
    """

    tokenizer: Any = None  # set by the factories; not part of the state dict

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        ffn: int = 128,
        max_len: int = 256,
        dropout: float = 0.1,
        pad_id: int = 0,
        sep_id: int | None = None,
        exact_match: bool = False,
    ):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"dim: must be divisible by heads ({heads}), got {dim}")
        if exact_match and sep_id is None:
            raise ConfigError("exact_match: needs sep_id (it marks pieces the two texts of a pair share)")
        self.max_len = max_len
        self.token_embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.sep_id = sep_id
        self.segment_embedding = nn.Embedding(2, dim) if sep_id is not None else None
        self.match_embedding = nn.Embedding(2, dim) if exact_match else None
        self.embedding_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn, dropout) for _ in range(layers))
        self.head = nn.Linear(dim, num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> dict[str, Any]:
        # token_type_ids is accepted for call parity with BERT teachers; one segment embedding would be dead weight.
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)  # (B, T, D)
        if self.segment_embedding is not None:
            x = x + self.segment_embedding(second_segment(input_ids, self.sep_id))
        if self.match_embedding is not None:
            x = x + self.match_embedding(matched_pieces(input_ids, attention_mask, self.sep_id))
        x = self.dropout(self.embedding_norm(x))
        padding = attention_mask == 0
        hidden_states = [x]
        for layer in self.layers:
            x = layer(x, padding)
            hidden_states.append(x)
        pooled = masked_mean(x, attention_mask)
        return {"logits": self.head(pooled), "pooled": pooled, "hidden_states": tuple(hidden_states)}


class MiniLMClassifier(nn.Module):
    """A Hugging Face sequence classifier (MiniLM) behind the common text forward contract.

    ``logits`` come from the HF head (BERT pooler over [CLS]); ``pooled`` is the masked mean of the last hidden
    state, the sentence embedding all-MiniLM-L6-v2 was trained to produce, so it compares like with like against
    the student's ``pooled``.
    """

    def __init__(self, model: nn.Module, tokenizer: Any):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        if output_attentions and self.model.config._attn_implementation != "eager":
            self.model.set_attn_implementation("eager")  # fused attention kernels do not return the maps
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=True,
            output_attentions=output_attentions,
        )
        pooled = masked_mean(out.hidden_states[-1], attention_mask)
        result = {"logits": out.logits, "pooled": pooled, "hidden_states": tuple(out.hidden_states)}
        return result | ({"attentions": tuple(out.attentions)} if output_attentions else {})


def tiny_text_classifier(
    num_labels: int,
    tokenizer: str | Path | PreTrainedTokenizerBase = "minilm-l6",
    max_len: int | None = None,
    **kwargs: Any,
) -> TinyTextClassifier:
    """Build a :class:`TinyTextClassifier` sized from ``tokenizer`` (vocab size, pad id, max length).

    The default MiniLM WordPiece vocabulary (30522) alone costs 30522 x 64 = 1.95M embedding parameters; for a
    sub-1M student pass a small vocabulary from :func:`build_vocab_tokenizer` (or a directory it was saved to).
    ``max_len`` defaults to the tokenizer's ``model_max_length`` so truncated inputs always have a position.
    """
    tokenizer = hub.load_tokenizer(tokenizer)
    max_len = tokenizer.model_max_length if max_len is None else max_len
    if max_len > _MAX_POSITIONS:
        raise ConfigError(f"max_len: tokenizer sets no length limit; pass max_len (<= {_MAX_POSITIONS})")
    if tokenizer.model_max_length > max_len:
        raise ConfigError(f"max_len: {max_len} is shorter than the tokenizer's {tokenizer.model_max_length}")
    model = TinyTextClassifier(len(tokenizer), num_labels, max_len=max_len, pad_id=tokenizer.pad_token_id, **kwargs)
    model.tokenizer = tokenizer
    return model


def hf_classifier(path: str, num_labels: int, new_head: bool = False) -> MiniLMClassifier:
    """Any local Hugging Face sequence classifier folder (``save_pretrained`` output) behind the text contract.

    This is how a fine-tuned or user-supplied teacher is saved with :func:`suite.students.io.save_student` and
    exported like any student: the folder gives the architecture and tokenizer, the saved weights are loaded on top.
    ``new_head``: a folder whose head has another number of labels gets a fresh one (it is about to be fine-tuned);
    without it, such a folder is refused, since its head cannot answer this task.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    folder = hub.resolve_model_path(path)
    found = AutoConfig.from_pretrained(folder, local_files_only=True).num_labels
    if found != num_labels and not new_head and _has_head(folder):
        raise ConfigError(f"{path}: its classification head has {found} labels but the task has {num_labels}; "
                          "fine-tune it on the task (teacher: finetune) or give one for these labels")  # fmt: skip
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=num_labels, local_files_only=True,
                                                               ignore_mismatched_sizes=new_head)  # fmt: skip
    return MiniLMClassifier(model, AutoTokenizer.from_pretrained(folder, local_files_only=True))


def _has_head(folder: Path) -> bool:
    """Whether the folder's config names a sequence-classification architecture (a bare encoder has no head)."""
    import json

    config = json.loads((Path(folder) / "config.json").read_text())
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def truncated_minilm_classifier(num_labels: int, num_layers: int = 2) -> MiniLMClassifier:
    """all-MiniLM-L6-v2 keeping its first ``num_layers`` layers, with a fresh classification head."""
    return MiniLMClassifier(*hub.load_minilm(num_labels=num_labels, num_layers=num_layers))


def minilm_classifier(num_labels: int) -> MiniLMClassifier:
    """The full 6-layer all-MiniLM-L6-v2 with a fresh head: the teacher to fine-tune before distilling."""
    return truncated_minilm_classifier(num_labels, num_layers=hub.MINILM_NUM_LAYERS)


def _merge(symbols: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def learn_wordpiece_vocab(word_counts: dict[str, int], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary learned by BPE merges (Sennrich et al., 2016) over ``##``-marked word pieces.

    Words start as characters (``cats -> c ##a ##t ##s``); each step merges the most frequent adjacent pair,
    ties broken by the lexicographically smallest pair, until ``vocab_size`` tokens or no pair occurs twice.
    The ``tokenizers`` WordPiece trainer does the same but breaks ties in hash-map order, so two runs on the same
    texts give different vocabularies; this one is a pure function of ``word_counts``.
    """
    words = [[word[0], *(f"##{c}" for c in word[1:])] for word in word_counts]
    counts = list(word_counts.values())
    vocab = list(dict.fromkeys([*SPECIAL_TOKENS, *sorted({s for w in words for s in w})]))
    pair_counts: Counter[tuple[str, str]] = Counter()
    holders: defaultdict[tuple[str, str], set[int]] = defaultdict(set)  # pair -> indices of words containing it
    for i, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:], strict=False):
            pair_counts[pair] += counts[i]
            holders[pair].add(i)
    heap = [(-n, pair) for pair, n in pair_counts.items()]
    heapq.heapify(heap)
    known = set(vocab)
    while len(vocab) < vocab_size and heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair) != -negative_count:
            continue  # stale entry: the pair's count changed after it was pushed
        if -negative_count < 2:
            break
        merged = pair[0] + pair[1].removeprefix("##")
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        changed = set()
        for i in holders.pop(pair):
            old, new = words[i], _merge(words[i], pair, merged)
            for p in zip(old, old[1:], strict=False):
                pair_counts[p] -= counts[i]
                changed.add(p)
            for p in zip(new, new[1:], strict=False):
                pair_counts[p] += counts[i]
                holders[p].add(i)
                changed.add(p)
            words[i] = new
        del pair_counts[pair]
        for p in changed - {pair}:
            heapq.heappush(heap, (-pair_counts[p], p))
    return vocab


def build_vocab_tokenizer(texts: Iterable[str], vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    """A lowercase BERT-style WordPiece tokenizer whose vocabulary is learned from ``texts``, deterministically.

    Shrinks the student's embedding from 30522 x D to at most ``vocab_size`` x D (fewer when the corpus has fewer
    recurring pieces). Normalisation, pre-tokenisation and WordPiece encoding come from the ``tokenizers`` library;
    the vocabulary comes from :func:`learn_wordpiece_vocab`. Special tokens follow BERT ([PAD]=0, [UNK], [CLS],
    [SEP], [MASK]); inputs are wrapped as ``[CLS] a [SEP]`` / ``[CLS] a [SEP] b [SEP]``. The result saves with
    ``save_pretrained`` and reloads with ``AutoTokenizer.from_pretrained(dir)``; ``model_max_length`` is 256, the
    student's default ``max_len``.
    """
    from tokenizers import normalizers, pre_tokenizers

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    word_counts: Counter[str] = Counter()
    for text in texts:
        word_counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    return wordpiece_tokenizer(learn_wordpiece_vocab(dict(sorted(word_counts.items())), vocab_size))


def wordpiece_tokenizer(vocab: list[str], model_max_length: int = 256) -> PreTrainedTokenizerFast:
    """A lowercase BERT-style WordPiece tokenizer over ``vocab`` (which holds BERT's special tokens)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    backend = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer, backend.pre_tokenizer, backend.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def minilm_token_vectors(vocab: list[str], dim: int, batch_size: int = 256) -> torch.Tensor:
    """A (len(vocab), dim) starting table for a small student's token embedding: each piece's all-MiniLM-L6-v2
    sentence embedding (``##`` stripped), centred and projected on its top ``dim`` principal directions.

    A student trained from scratch on a few thousand pairs learns which words co-occur with a label, not that two
    words mean the same; starting its embedding from a pretrained encoder's view of each word gives it that (the
    word-vector initialisation of Tang et al. 2019, "Distilling task-specific knowledge from BERT into simple
    neural networks"). Scaled to unit variance per coordinate, like ``nn.Embedding``'s own initialisation.
    """
    from suite.selection.semantic import sentence_embeddings

    words = [piece[2:] if piece.startswith("##") else piece for piece in vocab]
    table = torch.from_numpy(sentence_embeddings(words, batch_size=batch_size, normalize=False))
    table = table - table.mean(dim=0)
    if dim > min(table.shape):
        raise ConfigError(f"dim: {dim} needs at least {dim} vocabulary pieces and <= 384 (MiniLM's width)")
    _, _, directions = torch.linalg.svd(table, full_matrices=False)
    projected = table @ directions[:dim].T
    return projected / projected.std(dim=0, keepdim=True).clamp_min(1e-6)


@torch.no_grad()
def start_token_embedding(student: TinyTextClassifier, vectors: torch.Tensor) -> None:
    """Copy ``vectors`` (e.g. :func:`minilm_token_vectors`) into a tiny student's token embedding; its padding row
    stays zero."""
    embedding = student.token_embedding
    embedding.weight.copy_(vectors)
    if embedding.padding_idx is not None:
        embedding.weight[embedding.padding_idx] = 0.0
