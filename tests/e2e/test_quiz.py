"""`capdissect quiz` (issue #18): at least 10 distinct questions per lesson capture, each
answer worked out again from `capdissect timeline --json`, and the GIFT file read back by
gift-pegjs, a parser of Moodle's GIFT grammar (tests/node, installed by `make tools`).

The oracle is the timeline JSON, an independent output of the same capture: every question
names the facts it rests on (its *checks*), the test looks each one up there, and then
rebuilds the short answer from those facts (the next sequence number from seq, length and
flags; an order from the frames; a port from the flow's endpoints).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

from capdissect.report.handout.explain import FLAG_MEANINGS

ROOT: Final = Path(__file__).resolve().parents[2]
CAPTURES: Final = sorted((ROOT / "captures").glob("*.pcap"))
NODE_TOOLS: Final = ROOT / "tests" / "node" / "node_modules"
LETTER_NAMES: Final = {"S": "SYN", ".": "ACK", "P": "PSH", "F": "FIN", "R": "RST", "U": "URG",
                       "E": "ECE", "W": "CWR"}


def cli(*args: object) -> str:
    done = subprocess.run([sys.executable, "-m", "capdissect", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def flows_of(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {flow["id"]: flow for proto in ("tcp", "udp") for flow in doc[proto]}


def lookup(record: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        record = record[part]
    return record


def port(spelled: str) -> int:
    return int(spelled.rsplit(":", 1)[1])


def verify(check: dict[str, Any], flows: dict[int, dict[str, Any]]) -> None:
    flow = flows[check["flow"]]
    events = {e["frame"]: e for e in flow["events"]}
    event = events.get(check.get("frame", -1), {})
    op, value = check["op"], check["value"]
    sides = ("client", "server") if "client" in flow else ("a", "b")
    if op == "eq" and "frame" in check:
        assert lookup(event, check["field"]) == value, (check, event)
    elif op == "eq" and check["field"] == "first-frame":
        assert flow["events"][0]["frame"] == value
    elif op == "eq":
        assert lookup(flow, check["field"]) == value, (check, flow)
    elif op == "contains":
        assert value in event["flags"], (check, event)
    elif op == "next-seq":
        flags = event["flags"]
        assert (event["seq"] + event["len"] + ("S" in flags) + ("F" in flags)) % 2**32 == value
    elif op in ("port-src", "port-dst"):
        mine = event["from"]
        other = sides[1] if mine == sides[0] else sides[0]
        assert port(flow[mine if op == "port-src" else other]) == value, (check, flow)
    elif op == "delay-us":
        quoted = events[event["answers_frame"]]
        assert round((event["ts"] - quoted["ts"]) * 1e6) == value
    elif op.startswith("count-"):
        mine = [e for e in flow["events"] if e.get("from") == op[6:] and "icmp" not in e]
        assert [len(mine), sum(e["len"] for e in mine)] == value
    elif op == "order":
        pass  # checked with the question's other checks, in verify_answer
    else:
        raise AssertionError(f"unknown check {check}")


def verify_answer(q: dict[str, Any], flows: dict[int, dict[str, Any]]) -> None:
    """The short answer, rebuilt from the checked facts."""
    checks, key = q["checks"], q["answer"]
    first = checks[0]
    if q["kind"] == "order":
        frames = [c["frame"] for c in checks if c["op"] == "order"]
        ranks = [c["value"] for c in checks if c["op"] == "order"]
        assert ranks == [sorted(frames).index(f) for f in frames]
        letters = "ABCD"[: len(frames)]
        by_frame = dict(zip(frames, letters, strict=True))
        assert key == " ".join(by_frame[f] for f in sorted(frames))
    elif q["kind"] == "flag":
        name = LETTER_NAMES[first["value"]]
        meaning = next(text for _, n, text in FLAG_MEANINGS if n == name)
        assert key == meaning and key in q["choices"] and len(set(q["choices"])) == 4
    elif q["kind"] == "time-wait":
        flow = flows[first["flow"]]
        assert key.split() == [r for r in ("client", "server") if flow["final"][r] == "TIME_WAIT"]
    elif q["kind"] == "refused":
        assert key == "none" and flows[first["flow"]]["open"] == "refused"
    elif q["kind"] == "count" and first["op"].startswith("count-"):
        assert key.split() == [str(v) for v in first["value"]]
    elif q["kind"] == "icmp" and len(checks) == 2:
        assert key == f"3 3 {checks[1]['value']}"
    elif q["kind"] == "handshake":  # packets of the flow before its first datagram
        events = flows[first["flow"]]["events"]
        assert key == str(sum(e["frame"] < first["value"] for e in events))
    elif q["kind"] == "field" and first["field"] == "from":
        flow = flows[first["flow"]]
        assert key == flow[first["value"]]
    else:
        want = first["value"] if first["value"] is not None else "no socket"
        assert key.split()[0] == str(want), (q, first)
        if q["kind"] == "ack":  # "ack N, in packet M"
            assert key.split()[1] == str(checks[1]["frame"])


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("seed", [0, 7])
def test_every_answer_matches_the_timeline_json(path: Path, seed: int) -> None:
    quiz = json.loads(cli("quiz", path, "--format", "json", "--seed", seed))
    doc = json.loads(cli("timeline", "--json", path))
    flows = flows_of(doc)
    asked = quiz["questions"]
    assert quiz["seed"] == seed and quiz["file"] == path.name
    assert len({q["text"] for q in asked}) == len(asked) >= 10, len(asked)
    kinds = {q["kind"] for q in asked}
    assert {"field"} <= kinds
    if doc["tcp"]:
        assert {"state", "next-seq", "flag"} <= kinds
    for q in asked:
        assert q["checks"], q
        for check in q["checks"]:
            verify(check, flows)
        verify_answer(q, flows)


def test_the_seed_changes_the_drills_not_the_facts() -> None:
    path = ROOT / "captures" / "tcp-basic.pcap"
    one, again, other = (json.loads(cli("quiz", path, "--seed", s)) for s in (1, 1, 2))
    assert one == again
    assert [q["text"] for q in one["questions"]] != [q["text"] for q in other["questions"]]
    assert ({q["text"] for q in one["questions"] if q["kind"] == "closer"}
            == {q["text"] for q in other["questions"] if q["kind"] == "closer"})


def test_the_handout_asks_from_the_same_generator() -> None:
    from capdissect.dissect.stack import decode
    from capdissect.report.handout.lesson import build_lesson
    from capdissect.sources import open_capture

    path = ROOT / "captures" / "tcp-basic.pcap"
    lesson = build_lesson([decode(raw) for raw in open_capture(path)], path.name)
    quiz = json.loads(cli("quiz", path))
    texts = [q["text"] for q in quiz["questions"]]
    assert all(q.text in texts for q in lesson.questions)
    assert {q.kind for q in lesson.questions} >= {"state", "flag", "field", "order"}


@pytest.mark.skipif(not (NODE_TOOLS / "gift-pegjs").is_dir() or shutil.which("node") is None,
                    reason="gift-pegjs is not installed (make tools)")
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_gift_parses_as_moodle_reads_it(path: Path, tmp_path: Path) -> None:
    gift = tmp_path / "quiz.gift"
    gift.write_text(cli("quiz", path, "--format", "gift", "--seed", 3), encoding="utf-8")
    quiz = json.loads(cli("quiz", path, "--format", "json", "--seed", 3))["questions"]
    script = ("const {parse} = require('gift-pegjs'); const fs = require('fs');"
              "console.log(JSON.stringify(parse(fs.readFileSync(process.argv[1], 'utf8'))));")
    done = subprocess.run(["node", "-e", script, str(gift)], cwd=NODE_TOOLS.parent,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    parsed = [q for q in json.loads(done.stdout) if q["type"] != "Category"]
    assert len(parsed) == len(quiz)
    for ours, theirs in zip(quiz, parsed, strict=True):
        assert theirs["title"] == f"q{ours['id']} {ours['kind']}"
        assert theirs["stem"]["text"] == ours["text"]
        assert theirs["globalFeedback"]["text"] == ours["explanation"]
        if ours["choices"]:
            assert theirs["type"] == "MC"
            right = [c["text"]["text"] for c in theirs["choices"] if c["isCorrect"]]
            assert right == [ours["answer"]]
            assert sorted(c["text"]["text"] for c in theirs["choices"]) == sorted(ours["choices"])
        elif ours["answer"].isdigit():
            assert theirs["type"] == "Numerical"
            assert theirs["choices"]["number"] == int(ours["answer"])
        else:
            assert theirs["type"] == "Short"
            assert [c["text"]["text"] for c in theirs["choices"]] == [ours["answer"]]
