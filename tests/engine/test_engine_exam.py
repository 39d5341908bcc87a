import copy
from fractions import Fraction

import pytest

from engine import Exam, ExamInvalid, Option, Question, parse_exam


def problems(doc, **kw):
    with pytest.raises(ExamInvalid) as ei:
        parse_exam(doc, **kw)
    return ei.value.problems


def with_q(doc, i, **changes):
    doc = copy.deepcopy(doc)
    for k, v in changes.items():
        if v is ...:
            doc["questions"][i].pop(k, None)
        else:
            doc["questions"][i][k] = v
    return doc


# --- a valid exam of all five types -------------------------------------

def test_five_types_parse(five_doc):
    exam = parse_exam(five_doc, version=3)
    assert isinstance(exam, Exam)
    assert (exam.id, exam.version, exam.title) == ("net-101", 3, "Networking basics")
    assert exam.duration_ms == 1_800_000
    assert exam.navigation == "free"
    assert exam.shuffle_questions and exam.shuffle_options and exam.show_result
    assert exam.pass_percent == 70
    assert exam.total == 5
    assert [q.type for q in exam.questions] == ["single", "multiple", "true_false", "numeric", "text"]
    assert dict(exam.by_id) == {"q1": 0, "q2": 1, "q3": 2, "q4": 3, "q5": 4}
    assert exam.max_score == 1 + 2 + 1 + 1 + 1

    q1, q2, q3, q4, q5 = exam.questions
    assert q1.answer == "b" and q1.penalty == Fraction(1, 2)
    assert q1.options == (Option("a", "2"), Option("b", "3"), Option("c", "4"))
    assert q2.answer == frozenset({"a", "c"}) and q2.scoring == "partial" and q2.points == 2
    assert q3.answer is True and q3.options == ()
    assert q4.answer == Fraction(314, 100) and q4.tolerance == Fraction(1, 100)
    assert q5.answer == ("Paris",) and q5.case_sensitive is False
    for q in exam.questions:
        assert isinstance(q.points, Fraction) and isinstance(q.penalty, Fraction)


def test_public_view_has_no_key(exam5):
    q1, q2, q3, q4, q5 = exam5.questions
    assert q1.public == {
        "id": "q1", "type": "single", "prompt": "Layer of IP?",
        "options": [{"id": "a", "text": "2"}, {"id": "b", "text": "3"}, {"id": "c", "text": "4"}],
        "points": 1,
    }
    assert q4.public == {"id": "q4", "type": "numeric", "prompt": "pi?", "options": [], "points": 1}
    for q in exam5.questions:
        assert set(q.public) == {"id", "type", "prompt", "options", "points"}


def test_defaults():
    exam = parse_exam({
        "id": "x", "title": "T", "duration_s": 60,
        "questions": [
            {"id": "a", "type": "multiple", "prompt": "p",
             "options": [{"id": "1", "text": "o"}, {"id": "2", "text": "o"}], "answer": ["1"]},
            {"id": "b", "type": "numeric", "prompt": "p", "answer": 2},
            {"id": "c", "type": "text", "prompt": "p", "answer": "k"},
        ],
    })
    assert exam.navigation == "free"
    assert exam.shuffle_questions is False and exam.shuffle_options is False
    assert exam.show_result is True
    assert exam.pass_percent == 50
    a, b, c = exam.questions
    assert a.points == 1 and a.penalty == 0 and a.scoring == "all_or_nothing"
    assert b.tolerance == 0 and b.answer == 2
    assert c.answer == ("k",) and c.case_sensitive is False
    assert exam.max_score == 3


def test_numbers_are_exact():
    exam = parse_exam({
        "id": "x", "title": "T", "duration_s": 60, "pass_percent": 33.3,
        "questions": [{"id": "a", "type": "numeric", "prompt": "p", "answer": 0.1,
                       "tolerance": 0.2, "points": 0.7, "penalty": 0.3}],
    })
    q = exam.questions[0]
    assert exam.pass_percent == Fraction(333, 10)
    assert q.answer == Fraction(1, 10)
    assert q.tolerance == Fraction(2, 10)
    assert q.points == Fraction(7, 10) and q.penalty == Fraction(3, 10)
    assert q.public["points"] == 0.7


def test_exam_id_argument(five_doc):
    doc = copy.deepcopy(five_doc)
    del doc["id"]
    assert parse_exam(doc, exam_id="from-url").id == "from-url"
    assert parse_exam(five_doc, exam_id="net-101").id == "net-101"
    assert problems(five_doc, exam_id="other")[0].startswith("id: ")
    assert problems(doc) == ["id: required"]


# --- everything wrong at once --------------------------------------------

def test_many_mistakes_all_listed():
    doc = {
        "id": "bad id!",
        "title": "",
        "duration_s": 0,
        "navigation": "sideways",
        "shuffle_questions": 1,
        "pass_percent": 101,
        "colour": "red",
        "questions": [
            {"id": "q1", "type": "single", "prompt": "p",
             "options": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "answer": "e"},
            {"id": "q1", "type": "multiple", "prompt": "p",
             "options": [{"id": "a", "text": "x"}, {"id": "b", "text": ""}],
             "answer": ["a", "a", "z"], "scoring": "most"},
            {"id": "q3", "type": "numeric", "prompt": "p", "answer": True, "tolerence": 0.1},
            {"id": "q4", "type": "essay", "prompt": "p", "answer": "x"},
            {"id": "q5", "type": "true_false", "prompt": "", "answer": "yes", "points": 0,
             "penalty": -1, "options": []},
            {"id": "q6", "type": "text", "prompt": "p", "answer": [], "tolerance": 1},
            "not an object",
            {"type": "numeric", "prompt": "p", "answer": 1, "points": True},
        ],
    }
    got = problems(doc)
    expected = [
        "id: must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-', not '.' or '..'",
        "title: must not be empty",
        "duration_s: must be a positive integer",
        'navigation: must be one of "free", "linear"',
        "shuffle_questions: must be a boolean",
        "pass_percent: must be at most 100",
        "colour: unknown field",
        'questions[0].options[1].id: duplicate option id "a"',
        'questions[0].answer: option "e" does not exist',
        'questions[1].id: duplicate question id "q1"',
        "questions[1].options[1].text: must not be empty",
        'questions[1].scoring: must be one of "all_or_nothing", "partial"',
        'questions[1].answer[1]: duplicate option id "a"',
        'questions[1].answer[2]: option "z" does not exist',
        "questions[2].tolerence: unknown field",
        "questions[2].answer: must be a finite number",
        'questions[3].type: must be one of "single", "multiple", "true_false", "numeric", "text"',
        'questions[4].options: not allowed for type "true_false"',
        "questions[4].prompt: must not be empty",
        "questions[4].points: must be greater than 0",
        "questions[4].penalty: must be at least 0",
        "questions[4].answer: must be a boolean",
        'questions[5].tolerance: not allowed for type "text"',
        "questions[5].answer: must be a string or a non-empty list of strings",
        "questions[6]: must be an object",
        "questions[7].id: required",
        "questions[7].points: must be a finite number",
    ]
    assert sorted(got) == sorted(expected)
    assert len(got) == len(expected)


def test_str_joins_problems():
    e = ExamInvalid(["a: x", "b: y"])
    assert str(e) == "a: x\nb: y"
    assert e.problems == ["a: x", "b: y"]


@pytest.mark.parametrize("doc", [None, [], "exam", 3])
def test_document_must_be_object(doc):
    assert problems(doc) == ["$: must be an object"]


def test_empty_object_lists_required():
    assert sorted(problems({})) == ["duration_s: required", "id: required", "questions: required",
                                    "title: required"]


# --- individual rules ------------------------------------------------------

@pytest.mark.parametrize("top, expected", [
    ({"id": "x" * 65}, "id: must be 1 to 64"),
    ({"id": ""}, "id: must be 1 to 64"),
    ({"id": 5}, "id: must be 1 to 64"),
    ({"title": "t" * 301}, "title: must be at most 300 characters"),
    ({"title": 7}, "title: must be a string"),
    ({"duration_s": 604_801}, "duration_s: must be at most 604800"),
    ({"duration_s": -5}, "duration_s: must be a positive integer"),
    ({"duration_s": 60.0}, "duration_s: must be a positive integer"),
    ({"duration_s": True}, "duration_s: must be a positive integer"),
    ({"shuffle_options": "yes"}, "shuffle_options: must be a boolean"),
    ({"show_result": 0}, "show_result: must be a boolean"),
    ({"pass_percent": -1}, "pass_percent: must be at least 0"),
    ({"pass_percent": True}, "pass_percent: must be a finite number"),
    ({"pass_percent": float("nan")}, "pass_percent: must be a finite number"),
    ({"pass_percent": float("inf")}, "pass_percent: must be a finite number"),
    ({"pass_percent": "50"}, "pass_percent: must be a finite number"),
    ({"questions": []}, "questions: must not be empty"),
    ({"questions": {}}, "questions: must be a list"),
])
def test_top_level_rules(five_doc, top, expected):
    five_doc.update(top)
    got = problems(five_doc)
    assert len(got) == 1 and got[0].startswith(expected), got


def test_too_many_questions():
    qs = [{"id": f"q{i}", "type": "true_false", "prompt": "p", "answer": True} for i in range(1001)]
    got = problems({"id": "x", "title": "t", "duration_s": 1, "questions": qs})
    assert got == ["questions: must have at most 1000 questions"]
    exam = parse_exam({"id": "x", "title": "t", "duration_s": 1, "questions": qs[:1000]})
    assert exam.total == 1000


@pytest.mark.parametrize("i, changes, expected", [
    (0, {"id": "q" * 129}, "questions[0].id: must be at most 128 characters"),
    (0, {"id": ""}, "questions[0].id: must not be empty"),
    (0, {"type": ...}, "questions[0].type: required"),
    (0, {"prompt": "p" * 20001}, "questions[0].prompt: must be at most 20000 characters"),
    (0, {"prompt": ...}, "questions[0].prompt: required"),
    (0, {"points": 1_000_001}, "questions[0].points: must be at most 1000000"),
    (0, {"points": float("inf")}, "questions[0].points: must be a finite number"),
    (0, {"penalty": False}, "questions[0].penalty: must be a finite number"),
    (0, {"answer": ...}, "questions[0].answer: required"),
    (0, {"answer": ["b"]}, "questions[0].answer: must be an option id (string)"),
    (0, {"options": ...}, "questions[0].options: required"),
    (0, {"options": [{"id": "b", "text": "x"}]}, "questions[0].options: must have 2 to 50 options"),
    (0, {"options": [{"id": str(i), "text": "x"} for i in range(51)], "answer": "1"},
     "questions[0].options: must have 2 to 50 options"),
    (0, {"options": "ab"}, "questions[0].options: must be a list"),
    (0, {"options": [{"id": "b", "text": "x"}, "c"]}, "questions[0].options[1]: must be an object"),
    (0, {"options": [{"id": "b", "text": "x"}, {"id": "c", "text": "y", "ok": 1}]},
     "questions[0].options[1].ok: unknown field"),
    (0, {"options": [{"id": "b", "text": "x"}, {"id": "c" * 65, "text": "y"}]},
     "questions[0].options[1].id: must be at most 64 characters"),
    (0, {"options": [{"id": "b", "text": "x"}, {"id": "c", "text": "y" * 5001}]},
     "questions[0].options[1].text: must be at most 5000 characters"),
    (0, {"options": [{"id": "b", "text": "x"}, {"text": "y"}]}, "questions[0].options[1].id: required"),
    (0, {"scoring": "partial"}, 'questions[0].scoring: not allowed for type "single"'),
    (1, {"answer": []}, "questions[1].answer: must be a non-empty list of option ids"),
    (1, {"answer": "a"}, "questions[1].answer: must be a non-empty list of option ids"),
    (1, {"answer": ["a", 3]}, "questions[1].answer[1]: must be an option id (string)"),
    (2, {"answer": 1}, "questions[2].answer: must be a boolean"),
    (2, {"case_sensitive": True}, 'questions[2].case_sensitive: not allowed for type "true_false"'),
    (3, {"answer": float("nan")}, "questions[3].answer: must be a finite number"),
    (3, {"answer": "3.14"}, "questions[3].answer: must be a finite number"),
    (3, {"tolerance": -0.1}, "questions[3].tolerance: must be at least 0"),
    (3, {"scoring": "partial"}, 'questions[3].scoring: not allowed for type "numeric"'),
    (4, {"answer": ["Paris", 5]}, "questions[4].answer[1]: must be a string"),
    (4, {"answer": 5}, "questions[4].answer: must be a string or a non-empty list of strings"),
    (4, {"answer": "  "}, "questions[4].answer: must not be blank"),
    (4, {"case_sensitive": "no"}, "questions[4].case_sensitive: must be a boolean"),
    (4, {"options": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]},
     'questions[4].options: not allowed for type "text"'),
    (4, {"hint": "x"}, "questions[4].hint: unknown field"),
])
def test_question_rules(five_doc, i, changes, expected):
    got = problems(with_q(five_doc, i, **changes))
    assert got == [expected]


def test_text_answer_string_becomes_tuple(five_doc):
    exam = parse_exam(with_q(five_doc, 4, answer="Paris"))
    assert exam.questions[4].answer == ("Paris",)


def test_model_is_frozen(exam5):
    with pytest.raises(AttributeError):
        exam5.title = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        exam5.questions[0].answer = "a"  # type: ignore[misc]
    with pytest.raises(TypeError):
        exam5.by_id["q9"] = 9  # type: ignore[index]


def test_question_constructed_directly_gets_public():
    q = Question(id="z", type="true_false", prompt="p", points=Fraction(3, 2), penalty=Fraction(0),
                 options=(), answer=True)
    assert q.public == {"id": "z", "type": "true_false", "prompt": "p", "options": [], "points": 1.5}
