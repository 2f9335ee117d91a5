"""trainer.metrics: values equal the underlying libraries' own, per output, on a fixed set of pairs with edge cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bert_score
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from trainer import metrics
from trainer.metrics import MetricError, MetricResult, available_metrics, needs_reference, plan, score
from trainer.metrics.bertscore_fast import BertScoreModelError, FastBertScorer, default_model_path
from trainer.metrics.text import exact_match, normalize_answer, token_f1

REPO = Path(__file__).resolve().parents[2]
LONG = ("The bottle keeps drinks cold for hours. " * 2600)[:100_000]

# (prediction, reference): ordinary copy, near misses, and the edge cases the product must survive.
PAIRS: list[tuple[str, str]] = [
    ("This insulated bottle keeps drinks cold for 24 hours.", "The insulated bottle keeps drinks cold for 24 hours."),
    ("Lightweight running shoes with a cushioned sole.", "Breathable running shoes with a soft, cushioned sole."),
    ("A ceramic mug.", "A handmade ceramic mug with a speckled glaze, dishwasher safe."),
    ("Exactly the same sentence.", "Exactly the same sentence."),
    ("Completely unrelated words here", "Stainless steel kettle boils fast"),
    ("", "A reference that the empty output misses."),
    ("   ", "Whitespace-only output."),
    ("An output with no reference words?", "!!!"),
    (LONG, "The bottle keeps drinks cold."),
    ("Emoji 😀🔥 and accents: café, naïve, Øresund.", "Emoji 😀 and accents: cafe, naive, Oresund."),
    ("中文产品描述：保温杯可以保温十二小时。", "保温杯保温十二小时。"),
    ("مرحبا بالعالم، هذا وصف المنتج", "هذا وصف المنتج"),
    ("Zero\u200bwidth and combining e\u0301 marks", "Zero width and combining é marks"),
    ("Control \x00 chars \x07 inside", "Control chars inside"),
    ("First sentence.\nSecond sentence on a new line.", "First sentence.\nA second line here."),
    ("cold cold cold cold cold", "keeps drinks cold"),
    ("Price: $29.99, 750 ml, 18/8 steel, IPX7.", "Costs $29.99 for 750 ml of 18/8 steel; IPX7 rated."),
    ("the the the", "a an the"),
    ("Short.", "Short."),
    ("USB-C fast charging (18W) in 30 min", "Fast charging over USB-C: 18 W, 30 minutes"),
]
PREDS = [p for p, _ in PAIRS]
REFS = [r for _, r in PAIRS]


@pytest.fixture(scope="module")
def all_scores() -> dict[str, MetricResult]:
    names = ["rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "exact_match", "token_f1", "output_length"]
    return score(names, PREDS, REFS)


def test_catalogue_and_reference_needs() -> None:
    assert {"rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "bertscore", "exact_match", "token_f1",
            "output_length"} <= set(available_metrics())
    assert needs_reference("bleu") and not needs_reference("output_length")
    with pytest.raises(MetricError):
        needs_reference("perplexity")


@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL", "rougeLsum"])
def test_rouge_equals_rouge_score(all_scores: dict[str, MetricResult], rouge_type: str) -> None:
    scorer = rouge_scorer.RougeScorer([rouge_type])
    expected = [scorer.score(r, p)[rouge_type].fmeasure for p, r in PAIRS]
    assert all_scores[rouge_type].per_item == pytest.approx(expected, abs=1e-6)
    assert all_scores[rouge_type].corpus == pytest.approx(sum(expected) / len(expected), abs=1e-6)


def test_bleu_equals_sacrebleu(all_scores: dict[str, MetricResult]) -> None:
    expected = [sacrebleu.sentence_bleu(p, [r]).score for p, r in PAIRS]
    assert all_scores["bleu"].per_item == pytest.approx(expected, abs=1e-6)
    # The corpus figure is corpus BLEU (pooled n-gram counts), not the mean of sentence scores.
    assert all_scores["bleu"].corpus == pytest.approx(sacrebleu.corpus_bleu(PREDS, [REFS]).score, abs=1e-6)


def test_chrf_equals_sacrebleu(all_scores: dict[str, MetricResult]) -> None:
    expected = [sacrebleu.sentence_chrf(p, [r]).score for p, r in PAIRS]
    assert all_scores["chrf"].per_item == pytest.approx(expected, abs=1e-6)
    assert all_scores["chrf"].corpus == pytest.approx(sacrebleu.corpus_chrf(PREDS, [REFS]).score, abs=1e-6)


def test_options_reach_the_libraries() -> None:
    preds = ["The runners were running quickly", "HELLO World"]
    refs = ["A runner runs quick", "hello world"]
    got = score(
        ["rouge1", "bleu", "chrf"], preds, refs,
        options={"rouge": {"use_stemmer": True}, "bleu": {"lowercase": True}, "chrf": {"word_order": 2}},
    )
    stemmed = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    assert got["rouge1"].per_item == pytest.approx([stemmed.score(r, p)["rouge1"].fmeasure for p, r in zip(preds, refs)])
    assert got["bleu"].per_item == pytest.approx([sacrebleu.sentence_bleu(p, [r], lowercase=True).score
                                                  for p, r in zip(preds, refs)])
    assert got["chrf"].per_item == pytest.approx([sacrebleu.sentence_chrf(p, [r], word_order=2).score
                                                  for p, r in zip(preds, refs)])
    plain = score(["rouge1"], preds, refs)
    assert plain["rouge1"].per_item != got["rouge1"].per_item  # stemming changed something, so it was applied


def test_bad_options_are_refused_by_name() -> None:
    with pytest.raises(MetricError, match="use_stemer"):
        score(["rouge1"], ["a"], ["a"], options={"rouge": {"use_stemer": True}})
    with pytest.raises(MetricError, match="keyed by metric"):
        score(["bleu", "output_length"], ["a"], ["a"], options={"lowercase": True})  # type: ignore[dict-item]
    # With a single metric, a flat dict of its options is unambiguous and accepted.
    flat = score(["bleu"], ["HELLO world"], ["hello world"], options={"lowercase": True})  # type: ignore[dict-item]
    assert flat["bleu"].per_item == pytest.approx([sacrebleu.sentence_bleu("HELLO world", ["hello world"],
                                                                            lowercase=True).score])
    with pytest.raises(MetricError, match="unknown option"):
        score(["bleu"], ["a"], ["a"], options={"lowercse": True})  # type: ignore[dict-item]
    with pytest.raises(MetricError, match="unit"):
        score(["output_length"], ["a"], options={"output_length": {"unit": "bytes"}})
    # Options for a metric not asked for this time are ignored: one options dict can serve a whole run.
    assert score(["output_length"], ["a b"], options={"bertscore": {"num_layers": 6}})["output_length"].per_item == [2.0]


def test_exact_match_and_token_f1_follow_squad(all_scores: dict[str, MetricResult]) -> None:
    # Worked examples from the SQuAD definitions.
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert exact_match("The cat.", "cat") == 1.0
    assert exact_match("The cat.", "cat", normalize=False) == 0.0
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)  # P = 2/2, R = 2/3
    assert token_f1("cat cat", "cat") == pytest.approx(2 / 3)  # bag of tokens: one common "cat"
    assert token_f1("", "") == 1.0 and token_f1("", "cat") == 0.0 and token_f1("the", "a") == 1.0
    assert all_scores["exact_match"].per_item == [exact_match(p, r) for p, r in PAIRS]
    assert all_scores["token_f1"].per_item == pytest.approx([token_f1(p, r) for p, r in PAIRS])
    assert all_scores["exact_match"].per_item[3] == 1.0 and all_scores["exact_match"].per_item[0] == 0.0


def test_edge_cases_have_defined_scores(all_scores: dict[str, MetricResult]) -> None:
    for name, result in all_scores.items():
        assert len(result.per_item) == len(PAIRS)
        assert all(isinstance(v, float) for v in result.per_item), name
    for name in ["rouge1", "rougeL", "bleu", "chrf", "token_f1"]:
        assert all_scores[name].per_item[5] == 0.0, name  # empty output scores 0
        assert all_scores[name].per_item[6] == 0.0, name  # whitespace-only output scores 0
    assert all_scores["output_length"].per_item[5] == 0.0
    assert all_scores["output_length"].per_item[8] == len(LONG.split())
    assert all_scores["bleu"].per_item[3] == pytest.approx(100.0)


def test_missing_predictions_and_references_are_none_and_left_out_of_the_corpus() -> None:
    preds = ["a cat sat on the mat", None, "the dog barked", "birds sing"]
    refs = ["the cat sat on the mat", "anything", None, "birds sing loudly"]
    got = score(["bleu", "output_length"], preds, refs)
    assert got["bleu"].per_item[1] is None and got["bleu"].per_item[2] is None
    assert got["bleu"].corpus == pytest.approx(
        sacrebleu.corpus_bleu([preds[0], preds[3]], [[refs[0], refs[3]]]).score
    )
    # Reference-free: only the missing prediction is None.
    assert got["output_length"].per_item == [6.0, None, 3.0, 2.0]
    assert score(["bleu"], [None], ["x"])["bleu"] == MetricResult([None], None)


def test_undecodable_text_is_scored_not_crashed() -> None:
    preds: list[str | bytes] = [b"caf\xe9 au lait \xff", "lone \udcff surrogate", "fine"]
    refs = ["café au lait", "lone surrogate", "fine"]
    got = score(["rouge1", "bleu", "chrf", "token_f1", "output_length"], preds, refs)
    for result in got.values():
        assert all(isinstance(v, float) for v in result.per_item)
    assert got["bleu"].per_item[2] == pytest.approx(sacrebleu.sentence_bleu("fine", ["fine"]).score)
    with pytest.raises(MetricError, match="expected text"):
        score(["bleu"], [3], ["3"])  # type: ignore[list-item]
    with pytest.raises(MetricError, match="2 predictions but 1 references"):
        score(["bleu"], ["a", "b"], ["a"])


def test_reference_based_metrics_are_refused_without_references() -> None:
    with pytest.raises(MetricError) as err:
        score(["rouge1", "output_length"], ["an output"], None)
    assert err.value.metric == "rouge1"
    runnable, refused = plan(["rouge1", "bleu", "output_length"], has_references=False)
    assert runnable == ["output_length"]
    assert set(refused) == {"rouge1", "bleu"} and all(e.metric == n for n, e in refused.items())
    # The reference-free metric still runs on its own.
    assert score(runnable, ["two words"], None)["output_length"].per_item == [2.0]


def test_hub_metrics_need_allow_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MetricError, match="allows downloads"):
        score(["meteor"], ["a"], ["a"])
    with pytest.raises(MetricError, match="not a valid"):
        score(["../../etc/evil"], ["a"], ["a"], allow_downloads=True)

    class FakeHubMetric:
        def compute(self, predictions: list[str], references: list[str]) -> dict:
            return {"meteor": 0.5, "scores": [float(p == r) for p, r in zip(predictions, references)]}

    loaded: list[str] = []

    def fake_load(path: str, **_: object) -> FakeHubMetric:
        loaded.append(path)
        return FakeHubMetric()

    monkeypatch.setattr("evaluate.load", fake_load)
    monkeypatch.setattr(metrics, "_loaded", {})
    got = score(["meteor"], ["a", "b"], ["a", "c"], allow_downloads=True)
    assert loaded == ["meteor"]
    assert got["meteor"] == MetricResult([1.0, 0.0], 0.5)


def test_local_modules_load_offline() -> None:
    import evaluate

    assert os.environ.get("HF_EVALUATE_OFFLINE") == "1" and os.environ.get("HF_HUB_OFFLINE") == "1"
    for module in ["rouge", "bleu", "chrf", "bertscore", "exact_match", "token_f1", "output_length"]:
        folder = metrics.module_path(module)
        assert (folder / f"{module}.py").is_file()
        loaded = evaluate.load(str(folder), keep_in_memory=True)
        assert loaded.name == module


@pytest.mark.slow
def test_every_metric_runs_in_a_fresh_offline_process() -> None:
    # A fresh interpreter with the offline switches on and the hub endpoint pointing nowhere: any download attempt
    # would fail loudly.
    code = (
        "from trainer.metrics import score, available_metrics\n"
        "r = score(available_metrics(), ['a small red cup', ''], ['a red cup', 'x'])\n"
        "assert all(len(v.per_item) == 2 for v in r.values()), r\n"
        "print(sorted(r))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bertscore" in done.stdout


# --- BERTScore ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> str:
    return str(default_model_path())


def _bert_score_f1(cands: list[str], refs: list[str], model: str, layers: int = 6, batch_size: int = 64) -> list[float]:
    _, _, f1 = bert_score.score(cands, refs, model_type=model, num_layers=layers, idf=False, batch_size=batch_size)
    return f1.tolist()


def test_bertscore_equals_bert_score(minilm: str) -> None:
    # bert_score 0.3.12 itself crashes on empty/whitespace-only text under transformers 5, so parity is checked on
    # the other pairs and the empty ones separately.
    keep = [i for i, (p, r) in enumerate(PAIRS) if p.strip() and r.strip()]
    cands, refs = [PREDS[i] for i in keep], [REFS[i] for i in keep]
    ours = score(["bertscore", "bertscore_precision", "bertscore_recall"], PREDS, REFS)
    _, _, _ = ours["bertscore"], ours["bertscore_precision"], ours["bertscore_recall"]
    p, r, f = bert_score.score(cands, refs, model_type=minilm, num_layers=6, idf=False, batch_size=64)
    assert [ours["bertscore"].per_item[i] for i in keep] == pytest.approx(f.tolist(), abs=1e-6)
    assert [ours["bertscore_precision"].per_item[i] for i in keep] == pytest.approx(p.tolist(), abs=1e-6)
    assert [ours["bertscore_recall"].per_item[i] for i in keep] == pytest.approx(r.tolist(), abs=1e-6)
    for i in set(range(len(PAIRS))) - set(keep):
        assert ours["bertscore"].per_item[i] == 0.0  # empty output: bert_score's documented 0
    assert ours["bertscore"].per_item[3] == pytest.approx(1.0, abs=1e-6)


def test_bertscore_matches_across_batch_sizes_layers_and_duplicates(minilm: str) -> None:
    # Several candidates per reference, repeated texts, and batches that split the pairs: bert_score pads within
    # each batch of pairs, and its padding floor must be reproduced for the same pairs.
    cands = [PREDS[i % 8] for i in range(14)] + ["ok", "no", "A ceramic mug."]
    refs = [REFS[(i * 3) % 8] for i in range(14)] + ["A handmade ceramic mug with a speckled glaze.", "yes", "mug"]
    cands = [c if c.strip() else "blank" for c in cands]
    refs = [r if r.strip() else "blank" for r in refs]
    for layers, batch_size in [(6, 4), (3, 64)]:
        ours = FastBertScorer(minilm, layers, batch_size=batch_size).score(cands, refs)
        expected = _bert_score_f1(cands, refs, minilm, layers, batch_size)
        assert ours.f1 == pytest.approx(expected, abs=1e-6), (layers, batch_size)


def test_bertscore_onednn_path_equals_plain_torch(minilm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cands, refs = PREDS[:6] + ["x"], REFS[:6] + ["y"]
    fast = FastBertScorer(minilm, 6, batch_size=8)
    monkeypatch.setattr("trainer.metrics.bertscore_fast._use_onednn_linears", lambda model: False)
    plain = FastBertScorer(minilm, 6, batch_size=8)
    assert not plain.onednn
    assert fast.score(cands, refs).f1 == pytest.approx(plain.score(cands, refs).f1, abs=1e-6)


def test_bertscore_model_errors(tmp_path: Path, minilm: str) -> None:
    with pytest.raises(BertScoreModelError, match="downloads"):
        FastBertScorer("roberta-large", 17)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BertScoreModelError, match="config.json"):
        FastBertScorer(tmp_path / "empty")
    with pytest.raises(MetricError, match="bertscore"):
        score(["bertscore"], ["a"], ["a"], options={"bertscore": {"model_path": str(tmp_path / "missing")}})
    assert FastBertScorer(minilm).score([], []).f1 == []
