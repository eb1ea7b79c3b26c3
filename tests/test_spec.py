"""Loading graph specs: every accepted form, and each kind of bad graph with its precise message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from graph_router.errors import SpecError
from graph_router.loader import load_graph_json, load_graph_text, load_graphs

RESOURCE = """
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: my-graph
  namespace: team-a
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
        - serviceName: a
        - serviceName: b
          data: $response
"""


def problems(text_or_spec: Any) -> list[str]:
    text = text_or_spec if isinstance(text_or_spec, str) else yaml.safe_dump(text_or_spec)
    with pytest.raises(SpecError) as info:
        load_graph_text(text, source="g.yaml")
    return [str(p) for p in info.value.problems]


def seq(*steps: dict[str, Any], **node: Any) -> dict[str, Any]:
    return {"nodes": {"root": {"routerType": "Sequence", "steps": list(steps), **node}}}


def test_whole_resource() -> None:
    [doc] = load_graph_text(RESOURCE)
    assert (doc.name, doc.namespace) == ("my-graph", "team-a")
    assert doc.wire() == {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "a"}, {"serviceName": "b", "data": "$response"}]}}}


def test_bare_spec_takes_the_file_name(tmp_path: Path) -> None:
    f = tmp_path / "My_Graph.json"
    f.write_text(orjson.dumps(seq({"serviceUrl": "http://x/v1/models/x:predict"})).decode())
    [doc] = load_graphs([f])
    assert doc.name == "my-graph" and doc.source == str(f)


def test_several_documents_skip_other_kinds_and_directories(tmp_path: Path) -> None:
    isvc = "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: a}\nspec: {}\n"
    two = RESOURCE.replace("my-graph", "second")
    (tmp_path / "a.yaml").write_text(isvc + "---" + RESOURCE + "---\n" + two)
    (tmp_path / "notes.txt").write_text("ignored")
    docs = load_graphs([tmp_path])
    assert [d.name for d in docs] == ["my-graph", "second"]


def test_graph_json_as_kserve_passes_it() -> None:
    doc = load_graph_json(orjson.dumps(seq({"serviceUrl": "http://a/v1/models/a:predict"})).decode())
    assert doc.name == "graph" and doc.spec.nodes["root"].steps[0].service_url.startswith("http://a")


def test_every_field_of_the_v1alpha1_api_is_accepted() -> None:
    spec = {
        "nodes": {
            "root": {"routerType": "Splitter", "steps": [
                {"name": "x", "serviceName": "a", "weight": 40, "dependency": "Hard", "data": "$request"},
                {"nodeName": "other", "weight": 60}]},
            "other": {"routerType": "Sequence", "steps": [
                {"serviceUrl": "http://b/v1/models/b:predict"},
                {"serviceName": "c", "data": "$response", "condition": "predictions",
                 "mapPredictionsToInstances": True}]},
        },
        "timeout": 30, "minReplicas": 0, "maxReplicas": 3, "scaleTarget": 5, "scaleMetric": "rps",
        "routerTimeouts": {"serverRead": 10, "serverWrite": 20, "serverIdle": 30, "serviceClient": 5},
        "resources": {"limits": {"cpu": "1"}}, "affinity": {}, "tolerations": [{"key": "k"}],
        "nodeSelector": {"a": "b"}, "nodeName": "node-1", "serviceAccountName": "sa",
    }
    [doc] = load_graph_text(yaml.safe_dump(spec))
    assert doc.wire()["routerTimeouts"] == {"serverRead": 10, "serverWrite": 20, "serverIdle": 30, "serviceClient": 5}


BAD: list[tuple[str, Any, list[str]]] = [
    ("no root", {"nodes": {"main": {"routerType": "Sequence", "steps": [{"serviceName": "a"}]}}},
     ["nodes: root node not found, InferenceGraph needs a node with name 'root' as the root node of the graph"]),
    ("duplicate step names", seq({"name": "s", "serviceName": "a"}, {"name": "s", "serviceName": "b"}),
     ['nodes.root.steps[1].name: Node "root" of InferenceGraph "g" contains more than one step with name "s"']),
    ("no target", seq({"name": "s"}),
     ['nodes.root.steps[0]: Step 0 ("s") in node "root" of InferenceGraph "g" does not specify an inference '
      "target"]),
    ("two targets", seq({"serviceName": "a", "serviceUrl": "http://a/"}),
     ['nodes.root.steps[0]: Step 0 ("") in node "root" of InferenceGraph "g" specifies more than one of '
      "nodeName, serviceName, serviceUrl"]),
    ("splitter weight missing", {"nodes": {"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 100}, {"serviceName": "b"}]}}},
     ["nodes.root.steps[1].weight: InferenceGraph[g] Node[root] Route[b] missing the 'Weight'"]),
    ("splitter sum", {"nodes": {"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 50}, {"serviceName": "b", "weight": 40}]}}},
     ["nodes.root.steps: InferenceGraph[g] Node[root] splitter node: the sum of traffic weights for all routing "
      "targets should be 100 (got 90)"]),
    ("negative weight", {"nodes": {"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 110}, {"serviceName": "b", "weight": -10}]}}},
     ["nodes.root.steps[1].weight: expected a non-negative integer, got -10"]),
    ("float weight", {"nodes": {"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 50.5}, {"serviceName": "b", "weight": 49.5}]}}},
     ["nodes.root.steps[0].weight: expected a non-negative integer, got 50.5",
      "nodes.root.steps[1].weight: expected a non-negative integer, got 49.5"]),
    ("dangling nodeName", seq({"nodeName": "clasifier"}) | {"nodes": {
        "root": {"routerType": "Sequence", "steps": [{"nodeName": "clasifier"}]},
        "classifier": {"routerType": "Sequence", "steps": [{"serviceName": "a"}]}}},
     ["nodes.root.steps[0].nodeName: node 'clasifier' does not exist (did you mean 'classifier'?); nodes of this "
      "graph: classifier, root"]),
    ("cycle", {"nodes": {
        "root": {"routerType": "Sequence", "steps": [{"nodeName": "a"}]},
        "a": {"routerType": "Sequence", "steps": [{"nodeName": "b"}]},
        "b": {"routerType": "Sequence", "steps": [{"nodeName": "a"}]}}},
     ["nodes.b: cycle: a -> b -> a (a graph must not call back into a node it came from)"]),
    ("bad condition syntax", {"nodes": {"root": {"routerType": "Switch", "steps": [
        {"serviceName": "a", "condition": "{ .predictions[0 == 'x' }"}]}}},
     ["nodes.root.steps[0].condition: invalid JSONPath condition \"{ .predictions[0 == 'x' }\": bad path "
      "\".predictions[0 == 'x' \" (Parse error at 1:16 near token == (FILTER_OP)) at column 3; check the "
      "JSONPath syntax"]),
    ("bad gjson syntax", {"nodes": {"root": {"routerType": "Switch", "steps": [
        {"serviceName": "a", "condition": 'predictions.#(label=="dog"'}]}}},
     ["nodes.root.steps[0].condition: invalid GJSON condition 'predictions.#(label==\"dog\"': '(' at column 14 "
      "is never closed; add a matching ')'"]),
    ("condition on first sequence step", seq({"serviceName": "a", "condition": "x"}),
     ["nodes.root.steps[0].condition: a condition on the first step of a Sequence has no previous response to "
      "test (KServe answers every request with 500 'invalid response'); move it to a later step or use a Switch "
      "node"]),
    ("unknown data", seq({"serviceName": "a"}, {"serviceName": "b", "data": "response"}),
     ["nodes.root.steps[1].data: unsupported value 'response': use $request, $response, or $request.<jsonpath> / "
      "$response.<jsonpath> to send part of it"]),
    ("switch step without condition", {"nodes": {"root": {"routerType": "Switch", "steps": [
        {"serviceName": "a", "condition": "x"}, {"serviceName": "b"}]}}},
     ["nodes.root.steps[1].condition: a Switch step needs a condition (KServe would never pick this step)"]),
    ("unknown field near miss", seq({"serviceURL": "http://a/"}),
     ["nodes.root.steps[0].serviceURL: unknown field (did you mean 'serviceUrl'?)",
      'nodes.root.steps[0]: Step 0 ("") in node "root" of InferenceGraph "g" does not specify an inference '
      "target"]),
    ("unknown router type", {"nodes": {"root": {"routerType": "Sequense", "steps": [{"serviceName": "a"}]}}},
     ["nodes.root.routerType: unsupported value 'Sequense' (did you mean 'Sequence'?): one of Sequence, Switch, "
      "Ensemble, Splitter"]),
    ("bad dependency", seq({"serviceName": "a", "dependency": "hard"}),
     ["nodes.root.steps[0].dependency: unsupported value 'hard' (did you mean 'Hard'?): one of Soft, Hard"]),
    ("empty steps", {"nodes": {"root": {"routerType": "Sequence", "steps": []}}},
     ["nodes.root.steps: a node needs at least one step"]),
    ("retry out of range", seq({"serviceName": "a", "retry": {"maxRetries": 11, "retryOn": ["404"]}}),
     ["nodes.root.steps[0].retry.maxRetries: expected an integer from 0 to 10, got 11",
      "nodes.root.steps[0].retry.retryOn[0]: unsupported value '404' (4xx answers are never retried): one of "
      "connect-failure, reset, timeout, 502, 503, 504"]),
    ("aggregate on a sequence", seq({"serviceName": "a"}, aggregate="mean"),
     ["nodes.root.aggregate: only an Ensemble node aggregates; this node is a Sequence"]),
    ("router timeouts not integers", seq({"serviceName": "a"}) | {"routerTimeouts": {"serverRead": "10s"}},
     ["routerTimeouts.serverRead: expected whole seconds (an integer >= 0), got '10s'"]),
    ("bad propagate regex", seq({"serviceName": "a"}) | {"propagateHeaders": ["x-("]},
     ["propagateHeaders[0]: invalid regular expression 'x-(': missing ), unterminated subpattern at position 2"]),
]


@pytest.mark.parametrize(("case", "spec", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_graph_reports_precise_problems(case: str, spec: Any, expected: list[str]) -> None:
    assert problems(spec) == expected


def test_all_problems_are_reported_at_once() -> None:
    spec = {"nodes": {"main": {"routerType": "Ensemble", "steps": [{"nodeName": "ghost"}, {"name": 3}]}},
            "timeout": -1, "bogus": 1}
    got = problems(spec)
    assert len(got) == 6, got
    assert any(p.startswith("bogus: unknown field") for p in got)
    assert any(p.startswith("timeout:") for p in got)


def test_resource_level_problems() -> None:
    text = RESOURCE.replace("name: my-graph", "name: My_Graph").replace("v1alpha1", "v1beta1")
    got = problems(text)
    assert got == [
        "apiVersion: unsupported 'serving.kserve.io/v1beta1': use serving.kserve.io/v1alpha1",
        'metadata.name: The InferenceGraph "My_Graph" is invalid: a InferenceGraph name must consist of lower '
        "case alphanumeric characters or '-', and must start with alphabetical character. (e.g. \"my-name\" or "
        "\"abc-123\", regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    ]


def test_invalid_yaml_says_where() -> None:
    got = problems("nodes:\n  root: [unclosed\n")
    assert len(got) == 1 and got[0].startswith("line 3, column 1: invalid YAML")


def test_errors_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "g.yaml"
    f.write_text("nodes: {}\n")
    with pytest.raises(SpecError) as info:
        load_graphs([f, tmp_path / "missing.yaml"])
    text = info.value.render()
    assert f"{f}: nodes: root node not found" in text
    assert f"{tmp_path / 'missing.yaml'}: no such file" in text


def test_a_field_from_another_router_gets_a_hint_by_shared_word() -> None:
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "a"}, {"nextNode": "b"}]},
                      "b": {"type": "Sequence", "steps": [{"serviceName": "b"}]}}}
    assert problems(spec) == [  # (yaml.safe_dump sorts the nodes: b first)
        "nodes.b.type: unknown field (did you mean 'routerType'?)",
        "nodes.b.routerType: missing: one of Sequence, Switch, Ensemble, Splitter",
        "nodes.root.steps[1].nextNode: unknown field (did you mean 'nodeName'?)",
        'nodes.root.steps[1]: Step 1 ("") in node "root" of InferenceGraph "g" does not specify an inference target',
    ]
    with pytest.raises(SpecError) as info:
        load_graph_text(yaml.safe_dump(spec), source="g.yaml")
    assert "\n  - nodes.root.steps[1].nextNode: unknown field (did you mean 'nodeName'?)\n" in info.value.render()


def test_no_hint_when_a_word_is_shared_by_several_fields() -> None:
    from graph_router.spec_checks import STEP_FIELDS, did_you_mean

    assert did_you_mean("url", STEP_FIELDS) == ""  # serviceUrl or warmupUrl: no guess
    assert did_you_mean("next_node", STEP_FIELDS) == " (did you mean 'nodeName'?)"
    assert did_you_mean("endpoint", STEP_FIELDS) == ""
