import ast
import pathlib

import engine

ENGINE_DIR = pathlib.Path(engine.__file__).parent
ALLOWED_IMPORTS = {
    "__future__", "dataclasses", "enum", "fractions", "hmac", "hashlib", "unicodedata", "math",
    "types", "typing",
}

EXPECTED = {
    "ExamInvalid", "Option", "Question", "Exam", "parse_exam",
    "derive_seed", "permutation", "Layout", "layout", "batch",
    "Value", "check_value", "score_question", "QuestionResult", "Result", "score_exam", "number",
    "State", "FINAL", "Refused", "Attempt", "new_attempt",
    "Start", "Answer", "Flag", "Goto", "Fetch", "Event", "Submit",
    "Expire", "Pause", "Resume", "Extend", "Terminate", "Lost",
    "Outcome", "apply", "replay", "progress",
    "Clock", "clock_of", "seal", "unseal", "restore", "MAX_TICKET_LEN",
    "analyse",
}


def test_public_api_exported():
    assert set(engine.__all__) == EXPECTED
    for name in engine.__all__:
        assert getattr(engine, name) is not None


def test_engine_is_pure_stdlib():
    """No I/O, clocks or global randomness: only the listed stdlib modules."""
    for path in ENGINE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside the package
                    continue
                names = [node.module or ""]
            else:
                continue
            for n in names:
                assert n.split(".")[0] in ALLOWED_IMPORTS, f"{path.name} imports {n}"
