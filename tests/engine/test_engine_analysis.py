"""Item analysis (engine.analyse) against hand-computed data sets."""

from engine import analyse, parse_exam, score_exam

VERSION = 3

# Four 1-point items, no penalties: every item score is 0 or 1.
EXAM4 = parse_exam({
    "id": "stats-4",
    "title": "Item analysis",
    "duration_s": 600,
    "questions": [
        {"id": "q1", "type": "single", "prompt": "Pick b", "points": 1,
         "options": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}, {"id": "c", "text": "C"}],
         "answer": "b"},
        {"id": "q2", "type": "multiple", "prompt": "Pick a and c", "points": 1,
         "options": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}, {"id": "c", "text": "C"}],
         "answer": ["a", "c"]},
        {"id": "q3", "type": "true_false", "prompt": "True?", "points": 1, "answer": True},
        {"id": "q4", "type": "numeric", "prompt": "42?", "points": 1, "answer": 42},
    ],
}, version=VERSION)

# Answers and item scores x (1 = right, 0 = wrong or unanswered):
#
#        q1        q2          q3       q4      | x1 x2 x3 x4 | T = R | percent
#   C1   "b"       [a, c]      True     42      |  1  1  1  1 |   4   |  100
#   C2   "b"       [a, c]      False    42      |  1  1  0  1 |   3   |   75
#   C3   "b"       [a]         True     41      |  1  0  1  0 |   2   |   50
#   C4   "c"       [a, c]      None     None    |  0  1  0  0 |   1   |   25
#   C5   "b"       []          False    None    |  1  0  0  0 |   1   |   25
#
# Item statistics (m = 1, so facility = p_correct = p):
#   p  = 4/5, 3/5, 2/5, 2/5                       -> 0.8, 0.6, 0.4, 0.4
#   pq = 4/25, 6/25, 6/25, 6/25;  sum pq = 22/25
# Totals (all items are 0/1, so T = R = number right):
#   R = 4, 3, 2, 1, 1; mean 11/5 = 2.2; median 2; min 1; max 4
#   deviations 1.8, 0.8, -0.2, -1.2, -1.2; squares 3.24 + 0.64 + 0.04 + 1.44 + 1.44 = 6.8
#   var(R) = 6.8 / 5 = 34/25 = 1.36;  sd = sqrt(1.36) = 1.16619... -> 1.1662
# KR-20 = 4/3 * (1 - (22/25) / (34/25)) = 4/3 * 12/34 = 8/17 = 0.470588... -> 0.4706
# alpha: for 0/1 items var(x_i) = p_i q_i and T = R, so
#   alpha = 4/3 * (1 - (22/25) / (34/25)) = 8/17 -> 0.4706 as well
#
# Point-biserial of q1 (x1 = 1, 1, 1, 0, 1 against T = 4, 3, 2, 1, 1):
#   mean x1 = 4/5, var x1 = 4/25
#   cov = mean(x1*T) - mean(x1)*mean(T) = (4+3+2+0+1)/5 - 4/5 * 11/5 = 2 - 44/25 = 6/25
#   r = (6/25) / sqrt(4/25 * 34/25) = 6 / sqrt(136) = 3 / sqrt(34) = 0.514496... -> 0.5145
# Corrected item-total of q1 (x1 against T - x1 = 3, 2, 1, 1, 0):
#   mean 7/5; deviations 1.6, 0.6, -0.4, -0.4, -1.4; var = 5.2 / 5 = 26/25
#   cov = cov(x1, T) - var(x1) = 6/25 - 4/25 = 2/25
#   r = (2/25) / sqrt(4/25 * 26/25) = 2 / sqrt(104) = 1 / sqrt(26) = 0.196116... -> 0.1961
# Point-biserial of q4 (x4 = 1, 1, 0, 0, 0):
#   mean x4 = 2/5, var x4 = 6/25
#   cov = (4+3)/5 - 2/5 * 11/5 = 35/25 - 22/25 = 13/25
#   r = 13 / sqrt(6 * 34) = 13 / sqrt(204) = 0.910182... -> 0.9102
# Corrected of q4 (x4 against T - x4 = 3, 2, 2, 1, 1):
#   cov = 13/25 - 6/25 = 7/25; var(T - x4) = 34/25 + 6/25 - 2 * 13/25 = 14/25
#   r = 7 / sqrt(6 * 14) = 7 / sqrt(84) = 0.763763... -> 0.7638
ANSWERS4 = [
    {"q1": "b", "q2": ["a", "c"], "q3": True, "q4": 42},
    {"q1": "b", "q2": ["a", "c"], "q3": False, "q4": 42},
    {"q1": "b", "q2": ["a"], "q3": True, "q4": 41},
    {"q1": "c", "q2": ["a", "c"], "q3": None, "q4": None},
    {"q1": "b", "q2": [], "q3": False, "q4": None},
]


def record(exam, answers, *, state="submitted", version=VERSION):
    """A persisted result as storage keeps it (wire form of the scored attempt)."""
    return {"exam_version": version, "state": state, **score_exam(exam, answers).to_wire()}


def records4():
    return [record(EXAM4, a) for a in ANSWERS4]


def by_id(report):
    return {q["id"]: q for q in report["questions"]}


def test_item_scores_match_the_hand_table():
    x = [[q["points"] for q in r["questions"]] for r in records4()]
    assert x == [[1, 1, 1, 1], [1, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]]


def test_hand_computed_statistics():
    rep = analyse(EXAM4, records4())
    assert (rep["exam"], rep["version"], rep["n"], rep["excluded"]) == ("stats-4", VERSION, 5, 0)
    assert rep["max_score"] == 4
    assert rep["score"] == {"mean": 2.2, "median": 2, "sd": 1.1662, "min": 1, "max": 4}
    assert rep["kr20"] == 0.4706
    assert rep["alpha"] == 0.4706
    qs = by_id(rep)
    assert [q["id"] for q in rep["questions"]] == ["q1", "q2", "q3", "q4"]
    assert [q["type"] for q in rep["questions"]] == ["single", "multiple", "true_false", "numeric"]
    assert [q["points"] for q in rep["questions"]] == [1, 1, 1, 1]
    assert [q["facility"] for q in rep["questions"]] == [0.8, 0.6, 0.4, 0.4]
    assert [q["p_correct"] for q in rep["questions"]] == [0.8, 0.6, 0.4, 0.4]
    assert qs["q1"]["point_biserial"] == 0.5145
    assert qs["q1"]["discrimination"] == 0.1961
    assert qs["q4"]["point_biserial"] == 0.9102
    assert qs["q4"]["discrimination"] == 0.7638


def test_answered_and_option_counts():
    qs = by_id(analyse(EXAM4, records4()))
    # q1: everyone answered; "a" was never chosen but is listed.
    assert qs["q1"]["answered"] == 5
    assert list(qs["q1"]["options"].items()) == [("a", 0), ("b", 4), ("c", 1)]
    # q2: C5's [] is unanswered; each chosen option counts once per candidate.
    assert qs["q2"]["answered"] == 4
    assert list(qs["q2"]["options"].items()) == [("a", 4), ("b", 0), ("c", 3)]
    assert qs["q3"]["answered"] == 4
    assert qs["q3"]["options"] == {"true": 2, "false": 2}
    assert qs["q4"]["answered"] == 3
    assert qs["q4"]["options"] is None


def test_distribution_buckets():
    dist = analyse(EXAM4, records4())["distribution"]
    assert [(b["from"], b["to"]) for b in dist] == [(i, i + 10) for i in range(0, 100, 10)]
    counts = {b["from"]: b["count"] for b in dist if b["count"]}
    # 25, 25 -> [20, 30); 50 -> [50, 60); 75 -> [70, 80); 100 -> last bucket [90, 100]
    assert counts == {20: 2, 50: 1, 70: 1, 90: 1}


def test_terminated_and_other_versions_are_excluded():
    extra = [
        record(EXAM4, ANSWERS4[0], state="terminated"),
        record(EXAM4, ANSWERS4[4], version=VERSION + 1),
        record(EXAM4, ANSWERS4[4], version=VERSION - 1),
    ]
    expired = record(EXAM4, ANSWERS4[2], state="expired")
    base = records4()
    rep = analyse(EXAM4, extra[:1] + base[:2] + [expired] + base[3:] + extra[1:])
    assert (rep["n"], rep["excluded"]) == (5, 3)
    # the expired attempt stands in for C3, so the statistics are unchanged
    assert rep == {**analyse(EXAM4, base), "excluded": 3}


def test_no_records():
    rep = analyse(EXAM4, [record(EXAM4, ANSWERS4[0], state="terminated")])
    assert (rep["n"], rep["excluded"]) == (0, 1)
    assert rep["score"] == {"mean": None, "median": None, "sd": None, "min": None, "max": None}
    assert [b["count"] for b in rep["distribution"]] == [0] * 10
    assert rep["kr20"] is None and rep["alpha"] is None
    for q in rep["questions"]:
        assert q["answered"] == 0
        assert q["facility"] is None and q["p_correct"] is None
        assert q["point_biserial"] is None and q["discrimination"] is None
    qs = by_id(rep)
    assert qs["q1"]["options"] == {"a": 0, "b": 0, "c": 0}
    assert qs["q3"]["options"] == {"true": 0, "false": 0}


def test_one_record():
    rep = analyse(EXAM4, records4()[1:2])  # C2: 1, 1, 0, 1
    assert rep["n"] == 1
    assert rep["score"] == {"mean": 3, "median": 3, "sd": 0, "min": 3, "max": 3}
    assert rep["kr20"] is None and rep["alpha"] is None
    assert [q["facility"] for q in rep["questions"]] == [1, 1, 0, 1]
    assert all(q["point_biserial"] is None and q["discrimination"] is None for q in rep["questions"])


def test_zero_variance_items_have_no_correlation():
    # everyone gets q3 wrong: var(x3) = 0, so r with T is undefined
    answers = [{**a, "q3": False} for a in ANSWERS4]
    rep = analyse(EXAM4, [record(EXAM4, a) for a in answers])
    q3 = by_id(rep)["q3"]
    assert q3["p_correct"] == 0
    assert q3["point_biserial"] is None and q3["discrimination"] is None


# Penalties and a negative total.  q1: 2 points, penalty 1; q2: 1 point, penalty 1.
EXAM2 = parse_exam({
    "id": "stats-2",
    "title": "Penalties",
    "duration_s": 600,
    "questions": [
        {"id": "q1", "type": "single", "prompt": "Pick b", "points": 2, "penalty": 1,
         "options": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}], "answer": "b"},
        {"id": "q2", "type": "true_false", "prompt": "True?", "points": 1, "penalty": 1,
         "answer": True},
    ],
}, version=VERSION)

#        x1   x2 |  T | right | R | percent of max 3
#   A     2    1 |  3 | both  | 2 | 100 -> [90, 100]
#   B    -1   -1 | -2 | none  | 0 | max(T, 0) = 0 -> [0, 10)   (stored score is 0)
#   C     2   -1 |  1 | q1    | 1 | 33.3 -> [30, 40)
#
# var x1: mean 1, deviations 1, -2, 1 -> 6/3 = 2
# var x2: mean -1/3, deviations 4/3, -2/3, -2/3 -> (16 + 4 + 4)/9 / 3 = 8/9
# T: mean 2/3 -> 0.6667; median 1; min -2; max 3
#   deviations 7/3, -8/3, 1/3 -> (49 + 64 + 1)/9 / 3 = 38/9; sd = sqrt(38)/3 = 2.05480... -> 2.0548
# alpha = 2/1 * (1 - (2 + 8/9) / (38/9)) = 2 * (1 - 26/38) = 12/19 = 0.631578... -> 0.6316
# KR-20: p1 = 2/3, p2 = 1/3, sum pq = 2/9 + 2/9 = 4/9; R = 2, 0, 1, var(R) = 2/3
#   = 2 * (1 - (4/9) / (6/9)) = 2/3 -> 0.6667
# q1: facility = mean x1 / 2 = 1/2; p_correct = 2/3 -> 0.6667
#   point-biserial: cov(x1, T) = (6 + 2 + 2)/3 - 1 * 2/3 = 8/3
#     r = (8/3) / sqrt(2 * 38/9) = 8 / sqrt(76) = 0.917662... -> 0.9177
#   corrected: T - x1 = x2; cov(x1, x2) = (2 + 1 - 2)/3 - 1 * (-1/3) = 2/3
#     r = (2/3) / sqrt(2 * 8/9) = (2/3) / (4/3) = 1/2 -> 0.5
# q2: facility = (-1/3) / 1 -> -0.3333
ANSWERS2 = [{"q1": "b", "q2": True}, {"q1": "a", "q2": False}, {"q1": "b", "q2": False}]


def test_penalties_and_negative_total():
    recs = [record(EXAM2, a) for a in ANSWERS2]
    assert [r["score"] for r in recs] == [3, 0, 1]  # stored score is clamped; T is not
    recs[1]["questions"][0]["points"] = -1.0  # floats are read exactly too
    rep = analyse(EXAM2, recs)
    assert rep["n"] == 3 and rep["max_score"] == 3
    assert rep["score"] == {"mean": 0.6667, "median": 1, "sd": 2.0548, "min": -2, "max": 3}
    assert rep["alpha"] == 0.6316
    assert rep["kr20"] == 0.6667
    q1, q2 = rep["questions"]
    assert (q1["facility"], q1["p_correct"]) == (0.5, 0.6667)
    assert (q1["point_biserial"], q1["discrimination"]) == (0.9177, 0.5)
    assert (q2["facility"], q2["p_correct"]) == (-0.3333, 0.3333)
    counts = {b["from"]: b["count"] for b in rep["distribution"] if b["count"]}
    assert counts == {0: 1, 30: 1, 90: 1}


def test_garbage_records_do_not_raise():
    v = VERSION
    garbage = [
        None, "record", 42, [], {},
        {"exam_version": True, "state": "submitted", "questions": []},  # a bool is not a version
        {"exam_version": str(v), "state": "submitted"},
        {"exam_version": v, "state": ["submitted"]},
        {"exam_version": v, "state": None},
    ]
    included = [
        {"exam_version": v, "state": "submitted"},  # no questions at all
        {"exam_version": v, "state": "expired", "questions": "not a list"},
        {"exam_version": v, "state": "submitted", "score": "x", "questions": [
            None, 5, "q1", [], {}, {"id": ["q1"]}, {"id": "nope", "points": 1},
            {"id": "q1", "value": "   ", "points": "1"},        # blank value, bad points -> 0
            {"id": "q1", "value": "b", "points": 1},           # repeated id: ignored
            {"id": "q2", "value": "ac", "points": float("nan")},  # a string is no choice list
            {"id": "q3", "value": 1, "points": float("inf")},
            {"id": "q4", "value": {"x": [1]}, "points": True},
        ]},
    ]
    rep = analyse(EXAM4, garbage + included)
    assert (rep["n"], rep["excluded"]) == (3, len(garbage))
    assert rep["score"] == {"mean": 0, "median": 0, "sd": 0, "min": 0, "max": 0}
    assert rep["kr20"] is None and rep["alpha"] is None
    qs = by_id(rep)
    assert [q["answered"] for q in rep["questions"]] == [0, 1, 1, 1]
    assert [q["facility"] for q in rep["questions"]] == [0, 0, 0, 0]
    assert qs["q1"]["options"] == {"a": 0, "b": 0, "c": 0}
    assert qs["q2"]["options"] == {"a": 0, "b": 0, "c": 0}
    assert qs["q3"]["options"] == {"true": 0, "false": 0}  # 1 is not True


def test_generator_of_records():
    rep = analyse(EXAM4, (r for r in records4()))
    assert rep["n"] == 5 and rep["kr20"] == 0.4706
