"""Prompts: exact texts against the original toolkit's, truncation, promptagator's seeded train-split examples,
template validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_beir
from inpars.datasets import load_dataset
from inpars.errors import InputError
from inpars.prompts import PROMPTS, Template, get_prompt, train_examples
from inpars.records import Document
from inpars.registry import UnknownNameError

# The 'inpars' template of the original toolkit (zetaalphavector/InPars, inpars/prompts/templates.yaml),
# as its StaticPrompt.build renders it: template.format(document=doc, query="").rstrip()
TOOLKIT_INPARS = (
    "Example 1:\n"
    "Document: We don't know a lot about the effects of caffeine during pregnancy on you and your baby. So it's "
    "best to limit the amount you get each day. If you are pregnant, limit caffeine to 200 milligrams each day. "
    "This is about the amount in 1\u00bd 8-ounce cups of coffee or one 12-ounce cup of coffee.\n"
    "Relevant Query: Is a little caffeine ok during pregnancy?\n"
    "\n"
    "Example 2:\n"
    "Document: Passiflora herbertiana. A rare passion fruit native to Australia. Fruits are green-skinned, white "
    "fleshed, with an unknown edible rating. Some sources list the fruit as edible, sweet and tasty, while others "
    "list the fruits as being bitter and inedible.assiflora herbertiana. A rare passion fruit native to Australia. "
    "Fruits are green-skinned, white fleshed, with an unknown edible rating. Some sources list the fruit as "
    "edible, sweet and tasty, while others list the fruits as being bitter and inedible.\n"
    "Relevant Query: What fruit is native to Australia?\n"
    "\n"
    "Example 3:\n"
    "Document: The Canadian Armed Forces. 1  The first large-scale Canadian peacekeeping mission started in Egypt "
    "on November 24, 1956. 2  There are approximately 65,000 Regular Force and 25,000 reservist members in the "
    "Canadian military. 3  In Canada, August 9 is designated as National Peacekeepers' Day.\n"
    "Relevant Query: How large is the canadian military?\n"
    "\n"
    "Example 4:\n"
    "Document: {document}\n"
    "Relevant Query: {query}\n"
)

DOC = Document("d1", "Aspirin lowers\nthe risk of   heart attack.", "Aspirin")


def test_registry_names() -> None:
    assert PROMPTS.names() == ["inpars", "inpars-forms", "inpars-gbq", "promptagator", *sorted(ORIGINAL_PROMPTAGATOR),
                              "template"]
    with pytest.raises(UnknownNameError, match="available: inpars"):
        get_prompt("nope")


def test_inpars_prompt_is_the_toolkits_byte_for_byte() -> None:
    built = get_prompt("inpars").build(DOC)
    expected = TOOLKIT_INPARS.format(document="Aspirin Aspirin lowers the risk of heart attack.", query="").rstrip()
    assert built.text == expected
    assert built.fewshot_examples == []


def test_inpars_gbq_structure() -> None:
    text = get_prompt("inpars-gbq").build(DOC).text
    blocks = text.split("\n\n")
    assert [b.split("\n")[0] for b in blocks] == ["Example 1:", "Example 2:", "Example 3:", "Example 4:"]
    for block in blocks[:3]:
        lines = block.split("\n")
        assert [line.split(":")[0] for line in lines[1:]] == ["Document", "Good Question", "Bad Question"]
    assert blocks[0].endswith("Good Question: How much caffeine is ok for a pregnant woman to have?\nBad Question: Is a little caffeine ok during pregnancy?")
    assert blocks[3] == "Example 4:\nDocument: Aspirin Aspirin lowers the risk of heart attack.\nGood Question:"


def test_documents_are_cut_with_the_given_tokenizer() -> None:
    # a character-level "tokenizer": truncating to n tokens keeps n characters
    calls = []

    def truncate(text: str, n: int) -> str:
        calls.append(n)
        return text[:n]

    text = get_prompt("inpars", truncate=truncate, max_doc_tokens=12).build(DOC).text
    assert calls == [12]
    assert text.endswith("Document: Aspirin Aspi\nRelevant Query:")
    # without a tokenizer: whitespace words
    text = get_prompt("inpars", max_doc_tokens=3, use_title=False).build(DOC).text
    assert text.endswith("Document: Aspirin lowers the\nRelevant Query:")


# ---------------------------------------------------------------------------------------------------------
# promptagator


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """20 documents, 12 train queries (one with two relevant docs), 4 test queries."""
    docs = [{"_id": f"d{i}", "title": f"T{i}", "text": f"text of document {i}"} for i in range(20)]
    queries = [{"_id": f"q{i}", "text": f"train query {i}"} for i in range(12)]
    queries += [{"_id": f"t{i}", "text": f"TEST query {i}"} for i in range(4)]
    train = [(f"q{i}", f"d{i}", 1) for i in range(12)] + [("q0", "d19", 1)]
    test = [(f"t{i}", f"d{12 + i}", 1) for i in range(4)]
    return write_beir(tmp_path / "lab", docs, queries, {"train": train, "test": test})


def test_promptagator_structure_and_ids(labelled: Path) -> None:
    ds = load_dataset(labelled)
    built = get_prompt("promptagator", train_split="train", dataset=ds, n_examples=2, seed=1).build(Document("d15", "target text", "Tt"))
    pairs = [tuple(x.split(":")) for x in built.fewshot_examples]
    assert len(pairs) == 2
    expected = "".join(
        f"Article: T{d[1:]} text of document {d[1:]}\nQuery: train query {q[1:]}\n\n" for q, d in pairs
    ) + "Article: Tt target text\nQuery:"
    assert built.text == expected
    train = {(q.query_id, q.doc_id) for q in ds.qrels("train")}
    assert set(pairs) <= train


def test_promptagator_is_seeded_and_uses_only_train(labelled: Path) -> None:
    ds = load_dataset(labelled)
    doc = Document("d13", "target")
    a = get_prompt("promptagator", train_split="train", dataset=ds, seed=0).build(doc)
    b = get_prompt("promptagator", train_split="train", dataset=load_dataset(labelled), seed=0).build(doc)
    c = get_prompt("promptagator", train_split="train", dataset=ds, seed=1).build(doc)
    assert a == b
    assert len(a.fewshot_examples) == 8 and len(set(a.fewshot_examples)) == 8
    assert a.fewshot_examples != c.fewshot_examples
    assert "TEST" not in a.text and "TEST" not in c.text
    assert all(x.startswith("q") for x in a.fewshot_examples + c.fewshot_examples)
    # q0 has two relevant documents: one example per query, its first relevant document
    assert not any(x == "q0:d19" for x in a.fewshot_examples + c.fewshot_examples)
    # every document gets the same examples in the same order (a shared prefix for the KV cache) ...
    other = get_prompt("promptagator", train_split="train", dataset=ds, seed=0).build(Document("d14", "another"))
    assert other.fewshot_examples == a.fewshot_examples
    # ... except that the target document is never shown as an example
    shown_doc = a.fewshot_examples[0].split(":")[1]
    own = get_prompt("promptagator", train_split="train", dataset=ds, seed=0).build(Document(shown_doc, "itself"))
    assert all(x.split(":")[1] != shown_doc for x in own.fewshot_examples) and len(own.fewshot_examples) == 8


def test_promptagator_drops_examples_to_fit(labelled: Path) -> None:
    ds = load_dataset(labelled)
    doc = Document("d13", "target")
    full = get_prompt("promptagator", train_split="train", dataset=ds).build(doc)
    # words per example block: "Article: Tn text of document n" (6) + "Query: train query n" (4) = 10
    # target "Article: target" + "Query:" = 3 words
    fitted = get_prompt("promptagator", train_split="train", dataset=ds, max_prompt_tokens=3 + 10 * 3 + 5).build(doc)
    assert fitted.fewshot_examples == full.fewshot_examples[:3]
    assert len(fitted.text.split()) == 33
    counted: list[str] = []
    fitted = get_prompt(
        "promptagator", train_split="train", dataset=ds, max_prompt_tokens=50, count_tokens=lambda s: counted.append(s) or len(s) // 10
    ).build(doc)
    assert counted and len(fitted.text) // 10 <= 50
    with pytest.raises(ValueError, match="does not fit in max_prompt_tokens=2"):
        get_prompt("promptagator", train_split="train", dataset=ds, max_prompt_tokens=2).build(doc)


def test_promptagator_without_train_split_is_a_clear_error(tmp_path: Path, tiny_beir: Path) -> None:
    docs = [{"_id": "d1", "text": "x"}]
    only_test = write_beir(tmp_path / "notrain", docs, [{"_id": "q1", "text": "q"}], {"test": [("q1", "d1", 1)]})
    ds = load_dataset(only_test)
    prompt = get_prompt("promptagator", train_split="train", dataset=ds)
    with pytest.raises(InputError, match=r"dataset 'notrain' has no 'train' split.*splits: test"):
        prompt.build(Document("d1", "x"))
    with pytest.raises(ValueError, match="needs a dataset"):
        get_prompt("promptagator").build(Document("d1", "x"))
    # asking for the test split as the example source hits the leakage guard
    from inpars.errors import LeakageError

    with pytest.raises(LeakageError):
        train_examples(load_dataset(tiny_beir), "test")


# ---------------------------------------------------------------------------------------------------------
# template


def test_template_prompt(tmp_path: Path, labelled: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Examples:\n{examples}\n\nTitle: {title}\nText: {document}\nA {{literal}} query:\n", encoding="utf-8")
    ds = load_dataset(labelled)
    built = get_prompt("template", train_split="train", template=path, dataset=ds, n_examples=2, max_doc_tokens=3).build(
        Document("d15", "one two three four", "My title")
    )
    assert built.text.startswith("Examples:\nDocument: ")
    assert built.text.endswith("\n\nTitle: My title\nText: one two three\nA {literal} query:")
    assert built.text.count("\nQuery: train query") == 2 and len(built.fewshot_examples) == 2
    # no {title}: the document is title + text; no {examples}: no dataset needed
    path.write_text("Document: {document}\nQuery:", encoding="utf-8")
    assert get_prompt("template", template=str(path)).build(DOC).text == (
        "Document: Aspirin Aspirin lowers the risk of heart attack.\nQuery:"
    )


def test_toolkit_style_template_with_trailing_query(tmp_path: Path) -> None:
    path = tmp_path / "custom.txt"
    path.write_text("Doc: {document}\nQ: {query}\n", encoding="utf-8")
    assert get_prompt("template", template=path).build(Document("x", "abc")).text == "Doc: abc\nQ:"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Doc: {doc}\nQuery:", r"unknown placeholder '\{doc\}'"),
        ("Title: {title}\nQuery:", r"no '\{document\}' placeholder"),
        ("Doc: {}\nQuery:", "positional placeholder"),
        ("Doc: {document!r}", "conversion or format spec"),
        ("Doc: {document", "malformed template"),
        ("{query} {document}", r"'\{query\}' may only end the template"),
    ],
)
def test_template_validation_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        get_prompt("template", template=path)
    assert str(path) in str(err.value)


def test_template_other_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="template file not found"):
        get_prompt("template", template=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="needs the option template"):
        get_prompt("template")
    path = tmp_path / "ex.txt"
    path.write_text("{examples}\n{document}", encoding="utf-8")
    with pytest.raises(InputError, match=r"uses '\{examples\}', which needs a dataset") as err:
        get_prompt("template", template=path)
    assert str(path) in str(err.value)
    assert get_prompt("template", template=path, n_examples=0).build(Document("x", "y")).text == "\ny"
    path.write_bytes(b"\xff\xfe{document}")
    with pytest.raises(InputError, match="not valid UTF-8"):
        Template.load(path)


# ---------------------------------------------------------------------------------------------------------
# the original toolkit's per-dataset Promptagator prompts, few-shot files, --prompt FILE

# zetaalphavector/InPars, inpars/prompts/templates.yaml (commit 9865521), as yaml.safe_load reads them
ORIGINAL_PROMPTAGATOR = {
    "promptagator-arguana": "Argument: {document}\nCounter argument: {query}\n",
    "promptagator-fiqa": "{document}\n{query}\n",
    "promptagator-hotpotqa": "Evidence: {document}\nVexed question: {query}\n",
    "promptagator-dbpedia-entity": "entity: {document}\nquery: {query}\n",
    "promptagator-nfcorpus": "Article: {document}\nQuery: {query}\n",
    "promptagator-webis-touche2020": "{document}\nDebate: {query}\n",
    "promptagator-trec-covid": "{document}\nQuestion: {query}\n",
    "promptagator-scifact": "{document}\nFinding: {query}\n",
    "promptagator-scidocs": "{document}\nThe passage is about {query}\n",
    "promptagator-fever": "{document}\nIs it true that {query}\n",  # the original file lacks this last newline
}


def _original_dynamic_prompt(template: str, examples: list[tuple[str, str]], document: str) -> str:
    """The original's DynamicPrompt.build without tokenizer truncation."""
    prompt = "".join(template.format(document=d, query=q) for q, d in examples)
    return prompt + template.format(document=document, query="").rstrip()


@pytest.mark.parametrize("name", sorted(ORIGINAL_PROMPTAGATOR))
def test_dataset_promptagator_prompts_render_as_the_original(name: str, labelled: Path) -> None:
    ds = load_dataset(labelled)
    prompt = get_prompt(name, train_split="train", dataset=ds, n_examples=3, seed=2)
    built = prompt.build(Document("d15", "target text", "Tt"))
    assert len(built.fewshot_examples) == 3
    shown = [tuple(x.split(":")) for x in built.fewshot_examples]
    examples = [(f"train query {q[1:]}", f"T{d[1:]} text of document {d[1:]}") for q, d in shown]
    assert built.text == _original_dynamic_prompt(ORIGINAL_PROMPTAGATOR[name], examples, "Tt target text")
    assert prompt.describe()["template_text"] == ORIGINAL_PROMPTAGATOR[name]


def test_fewshot_examples_file_in_the_original_format(tmp_path: Path) -> None:
    import json

    path = tmp_path / "scifact.json"
    rows = [{"query_id": f"q{i}", "doc_id": f"d{i}", "query": f"finding {i}", "document": f"abstract {i}"}
            for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    built = get_prompt("promptagator-scifact", examples_file=path, n_examples=2, seed=0).build(Document("d0", "new"))
    assert len(built.fewshot_examples) == 2 and "q0:d0" not in built.fewshot_examples
    for ex in built.fewshot_examples:
        i = ex.split(":")[0][1:]
        assert f"abstract {i}\nFinding: finding {i}\n" in built.text
    assert built.text.endswith("new\nFinding:")
    path.write_text('{"query_id": "q1", "doc_id": "d1", "query": ""}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"scifact.json:1: field 'query': missing or empty"):
        get_prompt("promptagator-scifact", examples_file=path).build(Document("x", "y"))


def test_prompt_given_as_a_template_file(tmp_path: Path, tiny_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fakes import register_fake_backend
    from inpars.cli import main

    path = tmp_path / "my_prompt.txt"
    path.write_text("Passage: {document}\nA question it answers:", encoding="utf-8")
    assert str(path) in PROMPTS and "nope.txt" not in PROMPTS and "inpars" in PROMPTS
    assert get_prompt(str(path)).build(DOC).text == "Passage: Aspirin Aspirin lowers the risk of heart attack.\nA question it answers:"
    with pytest.raises(InputError, match="not found"):
        get_prompt(str(tmp_path / "missing.txt"))
    with pytest.raises(UnknownNameError, match="or give the path of a template file"):
        get_prompt("nope")
    register_fake_backend()
    out = tmp_path / "q.jsonl"
    rc = main(["generate", "-d", str(tiny_beir), "--out", str(out), "--backend", "fake", "--prompt", str(path),
               "--n-docs", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["prompt_text"].startswith("Passage: ") for r in records)
