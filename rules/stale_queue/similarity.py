"""Near-duplicate grouping of task texts, for the stale-queue rule's ``duplicate`` kind.

Texts are compared by TF-IDF cosine over normalised word tokens. The IDF is
computed over the open tasks themselves, so boilerplate every task shares
("implement", "spec", "acceptance criteria") weighs little and the words that
say what a task is about weigh much. Identifiers (parts of tokens with
digits, such as ``012``, ``v2``, the ``3`` of ``test_login_3``) are kept and,
in titles, must agree: "Implement spec 012" and "Implement spec 013" say
different things. So must the action a title asks for ("Add X" is not
"Remove X").

Pairs are only scored when their titles share a word (a sparse product over
an inverted index), and words in a tenth of all titles do not make pairs on
their own (blocking), so grouping thousands of tasks costs far less than
comparing every pair.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from store import json_list

_PART = re.compile(r"[a-z0-9]+")
_DIGIT = re.compile(r"\d")

# A short English stopword list, words every backlog item uses and the fillers
# people add when they file a task again ("asap", "properly", "follow-up"): none
# says what a task is for.
_STOPWORD_TEXT = """
a an and any are as at be been but by can could do does for from has have how if in into is it
its may more must not of on or our over should so some such than that the their them then there
these this those to too up use used using via was we were what when where which while who will
with within without would you your also all each new please task todo need needs make ensure
asap properly again quickly now soon urgent urgently really just still follow followup
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """Fold common English inflections so "retries", "retry" and "retrying" meet."""
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("es") and word[-3] in "sxzh":
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            # "dropped" → "drop", as "drops" does
            return word[:-1] if len(word) > 3 and word[-1] == word[-2] else word
    return word


# What a task asks to do, by the first verb of its title that says it. "Add X to
# Y" and "Remove X from Y" share every other word yet ask for opposite work, so
# two titles whose actions are known and differ are never duplicates. Only the
# first counts because later ones are often nouns ("Fix the audit test").
_ACTION_VERBS = {
    "create": "add create implement introduce build support write enable",
    "fix": "fix repair resolve correct debug patch",
    "remove": "remove delete drop disable deprecate",
    "refactor": "refactor clean simplify restructure rewrite tidy",
    "document": "document docs",
    "test": "test tests",
    "speed": "speed optimize optimise accelerate",
    "migrate": "migrate move port upgrade",
    "investigate": "investigate diagnose analyse analyze",
    "review": "review audit",
}


def _inflections(verb: str) -> set[str]:
    forms = {verb, verb + "s", verb + "es", verb + "ed", verb + "d", verb + "ing"}
    if verb.endswith("e"):
        forms.add(verb[:-1] + "ing")
    return {_stem(f) for f in forms}


_ACTIONS = {
    form: action
    for action, verbs in _ACTION_VERBS.items()
    for verb in verbs.split()
    for form in _inflections(verb)
}


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
    title_action: str | None = field(init=False)
    body_tokens: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.title_tokens, self.title_ids = features(self.title)
        # "Review queue: speed up X" asks to speed up: the clause after a colon
        # says what to do, what comes before it names where.
        head, _, tail = self.title.rpartition(":")
        words = [*features(tail)[0], *features(head)[0]] if head else self.title_tokens
        self.title_action = next((_ACTIONS[w] for w in words if w in _ACTIONS), None)
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


def _title_pairs(titles: csr_matrix, df: np.ndarray, threshold: float) -> csr_matrix:
    """Title cosines of the pairs that can reach ``threshold``, upper triangle only.

    Blocking: pairs are found through the words they share (a sparse product,
    so pairs with nothing in common cost nothing), and words in more than
    ``cap`` titles, such as a verb every task starts with, do not make pairs
    by themselves. Their share of a pair's cosine is still counted exactly
    when the bound ``|common_i| * |common_j|`` says it could matter.
    """
    n = titles.shape[0]
    cap = max(200, n // 10)
    common_cols = df > cap
    rare = csr_matrix(titles.multiply(~common_cols[np.newaxis, :]))
    sims = (rare @ rare.T).tocoo()
    if common_cols.any():
        common = csr_matrix(titles.multiply(common_cols[np.newaxis, :]))
        bound = np.sqrt(np.asarray(common.multiply(common).sum(axis=1)).ravel())
        upper = sims.row < sims.col
        rows, cols, data = sims.row[upper], sims.col[upper], sims.data[upper]
        maybe = data + bound[rows] * bound[cols] >= threshold - 1e-9
        rows, cols = rows[maybe], cols[maybe]
        data = data[maybe] + _row_dots(common, rows, cols)
        return csr_matrix((data, (rows, cols)), shape=(n, n))
    return csr_matrix(sims)


def similar_pairs(docs: Sequence[Document], threshold: float) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, similarity)`` with ``i < j`` whose texts say the same thing.

    Two documents of the same block are similar when their titles' identifiers
    agree (or one title has none), their titles ask for the same action (or one
    title names none) and their similarity reaches ``threshold``: the cosine of
    their titles, and when both have a description also that of the whole text
    (the title counted twice, as it is the summary), whichever is lower.
    """
    n = len(docs)
    if n < 2:
        return []
    titles, df = _tfidf([d.title_tokens for d in docs])
    sims = _title_pairs(titles, df, threshold).tocoo()
    keep = (sims.row < sims.col) & (sims.data.round(3) >= threshold)
    left, right, title_scores = sims.row[keep], sims.col[keep], sims.data[keep]
    codes: dict[str, int] = {}
    blocks = np.asarray([codes.setdefault(d.block, len(codes)) for d in docs])
    same = blocks[left] == blocks[right]
    left, right, scores = left[same], right[same], title_scores[same]

    # With both descriptions, the titles and the whole text must each agree:
    # titles worded alike say little when the bodies ask for different things.
    has_body = np.asarray([bool(d.body_tokens) for d in docs])
    both = has_body[left] & has_body[right]
    if both.any():
        full, _ = _tfidf([[*d.title_tokens, *d.title_tokens, *d.body_tokens] for d in docs])
        scores[both] = np.minimum(scores[both], _row_dots(full, left[both], right[both]))
    scores = scores.round(3)
    pairs = []
    for i, j, score in zip(left.tolist(), right.tolist(), scores.tolist(), strict=True):
        a, b = docs[i], docs[j]
        if score < threshold:
            continue
        if a.title_ids and b.title_ids and a.title_ids != b.title_ids:
            continue
        if a.title_action and b.title_action and a.title_action != b.title_action:
            continue
        pairs.append((i, j, score))
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


def duplicate_groups(
    tasks: Sequence[dict[str, Any]], threshold: float
) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Groups of task rows that say the same thing, oldest first, with their pair scores.

    Rows need ``id``, ``title``, ``description``, ``task_type``, ``spec``,
    ``depends_on`` and ``created_at``. Only tasks of one ``task_type`` are
    compared; tasks of two different specs, or where one depends on the
    other (a follow-up, not a copy), are never paired.
    """
    docs = [Document(t["title"], t["description"] or "", t["task_type"] or "") for t in tasks]
    pairs = []
    for i, j, score in similar_pairs(docs, threshold):
        a, b = tasks[i], tasks[j]
        if a["spec"] and b["spec"] and a["spec"] != b["spec"]:
            continue
        if a["id"] in json_list(b["depends_on"]) or b["id"] in json_list(a["depends_on"]):
            continue
        pairs.append((i, j, score))
    out = []
    for group in groups(len(tasks), pairs):
        members = sorted((tasks[k] for k in group), key=lambda t: (t["created_at"], t["id"]))
        in_group = set(group)
        scores = sorted(
            (
                {"a": tasks[i]["id"], "b": tasks[j]["id"], "similarity": s}
                for i, j, s in pairs
                if i in in_group
            ),
            key=lambda p: (-p["similarity"], p["a"], p["b"]),
        )
        out.append((members, scores))
    return out
