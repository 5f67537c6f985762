"""Where an answer cites the files a search found (``file_search.citations``): a file's name
as a whole word or in brackets, the longer name where two overlap, nothing inside a word."""

from __future__ import annotations

from parley.engine.hosted import file_search

FILES = {"notes.txt": "file-a", "notes.txt.bak": "file-b", "a.md": "file-c"}


def test_a_name_in_brackets_or_alone_is_cited() -> None:
    text = "Owls hunt at night [notes.txt]. See notes.txt too."
    found = file_search.citations(text, FILES)
    assert [(c.file_id, text[c.start : c.end]) for c in found] == [
        ("file-a", "[notes.txt]"),
        ("file-a", "notes.txt"),
    ]


def test_the_longer_name_wins_and_names_inside_words_are_not_cited() -> None:
    text = "From notes.txt.bak, not mynotes.txt nor data.md or a.mdx; but a.md."
    found = file_search.citations(text, FILES)
    assert [(c.filename, c.start) for c in found] == [
        ("notes.txt.bak", 5),
        ("a.md", text.rindex("a.md")),
    ]


def test_the_told_passages_name_their_files_and_how_to_cite() -> None:
    item = {
        "type": "file_search_call",
        "queries": ["owls"],
        "status": "completed",
        "results": [{"filename": "notes.txt", "file_id": "file-a", "score": 0.5, "text": "Owls."}],
    }
    told = file_search.told(item)
    assert "[1] From the file notes.txt (score 0.50):\nOwls." in told
    assert "like [notes.txt]" in told
    assert file_search.cited_files([item]) == {"notes.txt": "file-a"}
    failed = file_search.told({**item, "status": "failed", "error": "the search took too long"})
    assert failed == "Error: the file search failed: the search took too long."
