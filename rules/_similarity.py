"""Near-duplicate grouping of task texts, for the stale-queue rule's ``duplicate`` kind.

Texts are compared by TF-IDF cosine over normalised word tokens. The IDF is
computed over the open tasks themselves, so boilerplate every task shares
("implement", "spec", "acceptance criteria") weighs little and the words that
say what a task is about weigh much. Identifiers (tokens with digits, such as
``012``, ``v2`` or ``test_login_3``) are kept as tokens and, in titles, must
agree: "Implement spec 012" and "Implement spec 013" say different things.

Pairs are only scored when they share a rare token (blocking), so grouping
thousands of tasks costs far less than comparing every pair.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

_PART = re.compile(r"[a-z0-9]+")
_DIGIT = re.compile(r"\d")

# A short English stopword list plus words every backlog item uses; both carry
# no meaning about what a task is for.
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "may",
        "more",
        "must",
        "not",
        "of",
        "on",
        "or",
        "our",
        "over",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "this",
        "those",
        "to",
        "too",
        "up",
        "use",
        "used",
        "using",
        "via",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "will",
        "with",
        "within",
        "without",
        "would",
        "you",
        "your",
        "also",
        "all",
        "each",
        "new",
        "please",
        "task",
        "todo",
        "need",
        "needs",
        "make",
        "ensure",
    }
)


def _stem(word: str) -> str:
    """Fold common English inflections so "retries", "retry" and "retrying" meet."""
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            return word[:-1] if len(word) > 3 and word[-1] == word[-2] else word
    if word.endswith("es") and word[-3:-2] in ("s", "x", "z", "h"):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def features(text: str) -> tuple[list[str], frozenset[str]]:
    """The word and identifier tokens of a text, and the set of its identifiers.

    Compound tokens split at ``. _ / -``; a part with a digit in it is an
    identifier (``spec-014`` is the word ``spec`` and the identifier ``14``,
    leading zeros dropped), the rest are words.
    """
    tokens: list[str] = []
    ids: set[str] = set()
    for part in _PART.findall(text.lower()):
        if _DIGIT.search(part):
            ident = "#" + (str(int(part)) if part.isdigit() else part)
            ids.add(ident)
            tokens.append(ident)
        elif len(part) > 1 and part not in _STOPWORDS:
            tokens.append(_stem(part))
    return tokens, frozenset(ids)


@dataclass
class Document:
    """One task as the comparison sees it."""

    title: str
    description: str
    block: str  # only documents with the same block are compared (e.g. the task type)
    title_tokens: list[str] = field(init=False)
    title_ids: frozenset[str] = field(init=False)
    body_tokens: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.title_tokens, self.title_ids = features(self.title)
        self.body_tokens, _ = features(self.description)


def _tfidf(token_lists: Sequence[Sequence[str]]) -> tuple[csr_matrix, np.ndarray]:
    """L2-normalised TF-IDF rows (sublinear tf, smoothed idf) and each token's document count."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for r, tokens in enumerate(token_lists):
        counts: dict[int, int] = {}
        for tok in tokens:
            col = vocab.setdefault(tok, len(vocab))
            counts[col] = counts.get(col, 0) + 1
        for col, count in counts.items():
            rows.append(r)
            cols.append(col)
            vals.append(1.0 + math.log(count))
    n = len(token_lists)
    matrix = csr_matrix((vals, (rows, cols)), shape=(n, max(len(vocab), 1)), dtype=np.float64)
    df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=matrix.shape[1])
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    matrix = csr_matrix(matrix.multiply(idf[np.newaxis, :]))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return csr_matrix(matrix.multiply(1.0 / norms[:, np.newaxis])), df


def _row_dots(matrix: csr_matrix, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    if len(left) == 0:
        return np.zeros(0)
    return np.asarray(matrix[left].multiply(matrix[right]).sum(axis=1)).ravel()


def similar_pairs(docs: Sequence[Document], threshold: float) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, similarity)`` with ``i < j`` whose texts say the same thing.

    Two documents of the same block are similar when their titles' identifiers
    agree (or one title has none) and their cosine similarity reaches
    ``threshold``: over title and description when both have a description
    (the title counted twice, as it is the summary), over titles alone when
    either lacks one.
    """
    n = len(docs)
    if n < 2:
        return []
    full_tokens = [[*d.title_tokens, *d.title_tokens, *d.body_tokens] for d in docs]
    full, df = _tfidf(full_tokens)
    titles, _ = _tfidf([d.title_tokens for d in docs])

    # Blocking: candidates share at least one token that few documents have.
    # A token in more than `cap` documents is boilerplate; a pair sharing only
    # such tokens cannot reach a high cosine once IDF has discounted them.
    cap = max(50, n // 20)
    rare = csr_matrix(full.multiply(df[np.newaxis, :] <= cap))
    rare.data[:] = 1.0
    rare.eliminate_zeros()
    co = (rare @ rare.T).tocoo()
    upper = co.row < co.col
    left, right = co.row[upper], co.col[upper]
    codes: dict[str, int] = {}
    blocks = np.asarray([codes.setdefault(d.block, len(codes)) for d in docs])
    same = blocks[left] == blocks[right]
    left, right = left[same], right[same]

    has_body = np.asarray([bool(d.body_tokens) for d in docs])
    both = has_body[left] & has_body[right]
    scores = np.where(both, _row_dots(full, left, right), _row_dots(titles, left, right)).round(3)
    keep = scores >= threshold
    pairs = []
    for i, j, s in zip(
        left[keep].tolist(), right[keep].tolist(), scores[keep].tolist(), strict=True
    ):
        a, b = docs[i].title_ids, docs[j].title_ids
        if a and b and a != b:
            continue
        pairs.append((i, j, s))
    return pairs


def groups(n: int, pairs: Sequence[tuple[int, int, float]]) -> list[list[int]]:
    """The connected components of the similarity graph with two members or more."""
    if not pairs:
        return []
    left = [p[0] for p in pairs]
    right = [p[1] for p in pairs]
    graph = csr_matrix((np.ones(len(pairs)), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for node in sorted({*left, *right}):
        members.setdefault(int(labels[node]), []).append(node)
    return [m for m in members.values() if len(m) > 1]
