"""loader.load: plain data with the 1-based line and column of every node, duplicate keys, aliases and merge keys
(bounded), JSON with and without positions, and one-line ManifestErrors at the exact position of the problem."""

from __future__ import annotations

import time

import pytest

from lameduck.errors import ManifestError
from lameduck.k8s import loader, rules
from lameduck.k8s.loader import MAX_ALIASED_NODES, Document, format_path


def load(text: str) -> list[Document]:
    return loader.load(text, "deploy.yaml")


def one(text: str) -> Document:
    docs = load(text)
    assert len(docs) == 1
    return docs[0]


def error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load(text)
    assert "\n" not in str(info.value)
    assert info.value.source == "deploy.yaml"
    return info.value


# -- positions -----------------------------------------------------------------------------------------------------

BLOCK = """\
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: app
          ports:
            - containerPort: 8000
          command:
            - lameduck
            - serve
"""


def test_block_style_positions_are_where_keys_and_items_are_written() -> None:
    doc = one(BLOCK)
    containers = ("spec", "template", "spec", "containers")
    assert doc.positions[()] == (1, 1)
    assert doc.positions[("kind",)] == (1, 1)
    assert doc.positions[("spec",)] == (2, 1)
    assert doc.positions[containers] == (5, 7)
    assert doc.positions[(*containers, 0)] == (6, 11)  # the item: where its first key starts
    assert doc.positions[(*containers, 0, "name")] == (6, 11)
    assert doc.positions[(*containers, 0, "ports", 0, "containerPort")] == (8, 15)
    assert doc.positions[(*containers, 0, "command", 1)] == (11, 15)


def test_flow_style_positions() -> None:
    doc = one('kind: Pod\nspec: {containers: [{name: app, args: [serve, "x:y"], ports: [{containerPort: 80}]}]}\n')
    assert doc.positions[("spec",)] == (2, 1)
    assert doc.positions[("spec", "containers")] == (2, 8)
    assert doc.positions[("spec", "containers", 0)] == (2, 21)
    assert doc.positions[("spec", "containers", 0, "args", 1)] == (2, 47)
    assert doc.positions[("spec", "containers", 0, "ports", 0, "containerPort")] == (2, 64)


def test_where_falls_back_to_the_closest_written_ancestor() -> None:
    doc = one(BLOCK)
    missing = ("spec", "template", "spec", "terminationGracePeriodSeconds")
    assert doc.where(missing) == (4, 5)
    assert doc.where(("nothing", "here")) == (1, 1)
    assert Document("x", 0).where(("a",)) == (0, 0)


def test_format_path() -> None:
    assert format_path(("spec", "containers", 0, "image")) == "spec.containers[0].image"
    assert format_path(("items", 3)) == "items[3]"
    assert format_path(()) == ""


def test_keys_are_strings_and_key_nodes_leave_no_positions() -> None:
    doc = one("1: a\ntrue: b\nnull: c\n1.5: d\n[x, y]: e\n{k: v}: f\n")
    assert list(doc.data) == ["1", "true", "null", "1.5", "['x', 'y']", "{'k': 'v'}"]
    assert all("<key>" not in path for path in doc.positions)


def test_yaml_11_scalars_and_exponent_floats() -> None:
    doc = one("a: yes\nb: 'yes'\nc: 010\nd: 1e5\ne: 1.5e3\nf: 0x1F\ng: ~\nh: 1E400\n")
    assert doc.data == {
        "a": True,
        "b": "yes",
        "c": 8,
        "d": 100000.0,
        "e": 1500.0,
        "f": 31,
        "g": None,
        "h": float("inf"),
    }


# -- documents -----------------------------------------------------------------------------------------------------


def test_multi_document_indexes_count_every_document_in_the_stream() -> None:
    text = "--- 1\n--- foo\n---\n# only a comment\n--- [1, 2]\n---\nkind: Pod\n...\n---\nkind: Service\n"
    docs = load(text)
    assert [(d.index, d.data) for d in docs] == [
        (0, 1),
        (1, "foo"),
        (3, [1, 2]),
        (4, {"kind": "Pod"}),
        (5, {"kind": "Service"}),
    ]
    assert docs[3].positions[("kind",)] == (7, 1)
    assert docs[4].positions[("kind",)] == (10, 1)


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing\n", "---\n---\n", "--- ~\n--- null\n"])
def test_empty_documents_are_skipped(text: str) -> None:
    assert load(text) == []


@pytest.mark.parametrize(
    "text", ["--- 1\n", "--- just text\n", "--- [a, b]\n", "- kind: Pod\n  spec: {}\n", "kind: 5\n"]
)
def test_documents_that_are_not_objects_are_loaded_and_ignored_by_the_rules(text: str) -> None:
    docs = load(text)
    assert len(docs) == 1
    assert rules.check_document(docs[0]) == []


def test_helm_template_output_with_source_comments() -> None:
    text = (
        "---\n# Source: chart/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n"
        "---\n# Source: chart/templates/empty.yaml\n---\n# Source: chart/templates/svc.yaml\nkind: Service\n"
    )
    docs = load(text)
    assert [(d.index, d.data["kind"]) for d in docs] == [(0, "ServiceAccount"), (2, "Service")]
    assert docs[1].positions[("kind",)] == (10, 1)


def test_a_leading_bom_is_not_a_column() -> None:
    doc = one("\ufeffkind: Pod\nspec: {}\n")
    assert doc.data == {"kind": "Pod", "spec": {}}
    assert doc.positions[("kind",)] == (1, 1)
    assert doc.positions[("spec",)] == (2, 1)


def test_tabs_inside_values_are_fine() -> None:
    assert one("a: x\ty\nb: 'p\tq'\n").data == {"a": "x\ty", "b": "p\tq"}


def test_tab_indentation_is_an_error_at_the_tab() -> None:
    e = error("kind: Pod\nspec:\n\tcontainers: []\n")
    assert (e.line, e.column) == (3, 1)
    assert str(e).startswith("deploy.yaml:3:1: found character that cannot start any token")


# -- duplicate keys ------------------------------------------------------------------------------------------------


def test_duplicate_keys_are_recorded_where_the_second_is_written_and_the_last_wins() -> None:
    doc = one("kind: Pod\nspec:\n  dnsPolicy: A\n  hostNetwork: true\n  dnsPolicy: B\n")
    assert doc.data["spec"]["dnsPolicy"] == "B"
    assert doc.duplicates == [(("spec", "dnsPolicy"), 5, 3)]
    assert doc.positions[("spec", "dnsPolicy")] == (5, 3)


def test_duplicate_key_positions_below_it_are_the_last_values() -> None:
    # Before: the first value's positions stayed (setdefault), so findings under env[0] pointed at the first list.
    doc = one("env:\n  - name: A\n    value: '1'\nenv:\n  - name: B\n")
    assert doc.data == {"env": [{"name": "B"}]}
    assert doc.positions[("env", 0)] == (5, 5)
    assert doc.positions[("env", 0, "name")] == (5, 5)
    assert ("env", 0, "value") not in doc.positions


def test_duplicate_keys_in_flow_style_and_after_normalisation() -> None:
    assert one("{a: 1, b: 2, a: 3}").duplicates == [(("a",), 1, 14)]
    assert one("1: a\n'1': b\n").duplicates == [(("1",), 2, 1)]


def test_a_duplicate_inside_an_anchor_is_reported_once_however_often_it_is_aliased() -> None:
    doc = one("a: &a {x: 1, x: 2}\nb: *a\nc: *a\nd: {<<: *a}\n")
    assert doc.duplicates == [(("a", "x"), 1, 14)]
    assert doc.data["d"] == {"x": 2}


def test_a_duplicate_inside_an_inline_merge_source_is_placed_under_the_mapping() -> None:
    doc = one("a:\n  <<: {x: 1, x: 2}\n  y: 3\n")
    assert doc.duplicates == [(("a", "x"), 2, 14)]
    assert doc.data == {"a": {"x": 2, "y": 3}}


def test_merge_keys_are_not_duplicates() -> None:
    doc = one("base: &b {x: 1, y: 2}\nother: &o {y: 5, z: 6}\nc:\n  <<: [*b, *o]\n  x: 3\n")
    assert doc.duplicates == []
    # explicit keys win over merged ones; among merged mappings the first wins
    assert doc.data["c"] == {"x": 3, "y": 2, "z": 6}


# -- anchors, aliases and merge keys -------------------------------------------------------------------------------

PROBES = """\
livenessProbe: &live
  httpGet: {path: /health/live, port: 8000}
  periodSeconds: 10
readinessProbe:
  <<: *live
  httpGet: {path: /health/ready, port: 8000}
startupProbe: *live
"""


def test_a_merged_key_that_is_overridden_leaves_no_position() -> None:
    # Before: the merged mapping was built first and its positions kept (setdefault), so readinessProbe.httpGet.path
    # pointed at the liveness probe's line, and keys only the overridden value had (port) kept a position.
    doc = one("live: &l\n  httpGet: {path: /a, port: 1}\nready:\n  <<: *l\n  httpGet: {path: /b}\n")
    assert doc.data["ready"] == {"httpGet": {"path": "/b"}}
    assert doc.positions[("ready", "httpGet", "path")] == (5, 13)
    assert ("ready", "httpGet", "port") not in doc.positions
    assert not any("<merge>" in path for path in doc.positions)


def test_aliases_and_merge_keys_resolve_like_kubectl() -> None:
    doc = one(PROBES)
    assert doc.data["startupProbe"] == doc.data["livenessProbe"]
    assert doc.data["readinessProbe"] == {"httpGet": {"path": "/health/ready", "port": 8000}, "periodSeconds": 10}


def test_an_alias_is_placed_at_its_key_and_its_insides_where_the_anchor_wrote_them() -> None:
    doc = one(PROBES)
    assert doc.positions[("startupProbe",)] == (7, 1)
    assert doc.positions[("startupProbe", "httpGet", "path")] == (2, 13)
    assert doc.positions[("readinessProbe", "httpGet", "path")] == (6, 13)
    assert doc.positions[("readinessProbe", "periodSeconds")] == (3, 3)


def test_many_legitimate_aliases_load() -> None:
    text = "probe: &p {httpGet: {path: /x, port: 1}, periodSeconds: 2}\n" + "".join(f"k{i}: *p\n" for i in range(2000))
    assert len(one(text).data) == 2001


def test_an_alias_bomb_stops_quickly_with_a_position() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    started = time.perf_counter()
    e = error("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 2.0
    assert f"document 1 expands to more than {MAX_ALIASED_NODES:,} nodes through aliases" in str(e)
    assert e.line >= 1
    assert e.column >= 1


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: &a\n  b: *a\n", 2, 3),
        ("&a [*a]\n", 1, 1),
        ("a: &a\n  <<: *a\n", 1, 4),
        ("a: &a [1, {b: [*a]}]\n", 1, 4),
    ],
)
def test_recursive_aliases_are_refused(text: str, line: int, column: int) -> None:
    e = error(text)
    assert str(e) == f"deploy.yaml:{line}:{column}: an alias refers to a node that contains it"


def test_an_undefined_alias() -> None:
    e = error("a: *nope\n")
    assert str(e) == "deploy.yaml:1:4: found undefined alias"


# -- JSON ----------------------------------------------------------------------------------------------------------


def test_json_is_read_as_yaml_with_positions() -> None:
    doc = one('{\n    "kind": "Pod",\n    "spec": {\n\t"containers": [{"name": "a", "args": ["x", 1e3]}]\n    }\n}\n')
    assert doc.data == {"kind": "Pod", "spec": {"containers": [{"name": "a", "args": ["x", 1000.0]}]}}
    assert doc.positions[("spec",)] == (3, 5)
    assert doc.positions[("spec", "containers", 0, "args", 1)] == (4, 45)  # a tab is one column


def test_json_that_only_json_reads_has_no_positions() -> None:
    # A key and its colon on different lines: valid JSON, not a YAML simple key.
    doc = one('{"kind": "Pod",\n "spec"\n   : {"containers": []}}')
    assert doc.data == {"kind": "Pod", "spec": {"containers": []}}
    assert doc.positions == {(): (1, 1)}  # only where the document starts
    assert doc.where(("spec",)) == (1, 1)


def test_a_json_stream_as_jq_prints_it() -> None:
    docs = load('{"kind": "Pod", "metadata": {"name": "a"}}\n{"kind": "Pod",\n "metadata"\n : {"name": "b"}}\n')
    assert [d.data["metadata"]["name"] for d in docs] == ["a", "b"]
    assert [d.where(("metadata",)) for d in docs] == [(1, 1), (2, 1)]


def test_tab_indented_json_keeps_its_positions() -> None:
    doc = one('{\n\t"kind": "Pod",\n\t"spec": {\n\t\t"containers": []\n\t}\n}\n')
    assert doc.where(("spec", "containers")) == (4, 3)


def test_a_json_list_of_objects() -> None:
    doc = one('[{"kind": "Pod"}, {"kind": "Service"}]')
    assert doc.data == [{"kind": "Pod"}, {"kind": "Service"}]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ('{"a": 1,, "b": 2}', 1, 9, "Expecting property name enclosed in double quotes"),
        ('{"a": 1\n "b": 2}', 2, 2, "Expecting ',' delimiter"),
        ('{"a": 1}\n{"b": 2', 2, 8, "Expecting ',' delimiter"),
        ('{"a": [1, 2}', 1, 12, "Expecting ',' delimiter"),
    ],
)
def test_malformed_json(text: str, line: int, column: int, message: str) -> None:
    e = error(text)
    assert str(e) == f"deploy.yaml:{line}:{column}: {message}"
    assert (e.line, e.column) == (line, column)


# -- malformed YAML ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "starts"),
    [
        ("a: b: c\n", 1, 5, "mapping values are not allowed"),
        ("kind: Pod\nspec:\n  - a\n  b: c\n", 4, 3, "did not find expected '-' indicator"),
        ('kind: Pod\nname: "unterminated\n', 3, 1, "found unexpected end of stream"),
        ("key: [1, 2\nother: 3\n", 2, 6, "did not find expected ',' or ']'"),
        ("a: |\n  x\n b\n", 3, 2, "did not find expected key"),
        ("%YAML 1.3\n---\na: 1\n", 1, 1, "found incompatible YAML document"),
    ],
)
def test_malformed_yaml_has_a_one_line_message_at_the_problem(text: str, line: int, column: int, starts: str) -> None:
    e = error(text)
    assert (e.line, e.column) == (line, column)
    assert str(e).startswith(f"deploy.yaml:{line}:{column}: {starts}")


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("a: \x00\n", 1, 4, "control characters are not allowed (character U+0000)"),
        ("a: é\nb: ü\x07\n", 2, 5, "control characters are not allowed (character U+0007)"),
        ("a: 1\nb: \uffff\n", 2, 4, "control characters are not allowed (character U+FFFF)"),
        ("a: 1\nb: x\udc80\n", 2, 5, "not UTF-8 text (character U+DC80)"),
    ],
)
def test_characters_yaml_refuses_are_placed_in_characters_not_bytes(
    text: str, line: int, column: int, message: str
) -> None:
    # Before: "(character 7 at byte 14)" with no line or column; a lone surrogate raised UnicodeEncodeError.
    e = error(text)
    assert str(e) == f"deploy.yaml:{line}:{column}: {message}"


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("a: !!int foo\n", 1, 4, "cannot read 'foo' as int"),
        ("a:\n  b: !!float x\n", 2, 6, "cannot read 'x' as float"),
        ("a: !!timestamp 2024-13-45\n", 1, 4, "cannot read '2024-13-45' as timestamp"),
        ("a: !Ref foo\n", 1, 4, "could not determine a constructor for the tag '!Ref'"),
        ("a: !!python/object:os.system x\n", 1, 4, "could not determine a constructor for the tag"),
    ],
)
def test_tags_that_cannot_be_constructed(text: str, line: int, column: int, message: str) -> None:
    # Before: !!int foo raised ValueError out of load().
    e = error(text)
    assert (e.line, e.column) == (line, column)
    assert message in str(e)


@pytest.mark.parametrize("depth", [1001, 20000])
def test_deep_nesting_is_an_error_not_a_crash(depth: int) -> None:
    e = error("[" * depth + "]" * depth)
    assert e.line == 1
    e = error("".join("  " * i + "a:\n" for i in range(depth if depth < 5000 else 3000)))
    assert e.line >= 1


def test_manifest_error_without_a_position_names_only_the_source() -> None:
    assert str(ManifestError("-", "no standard input")) == "-: no standard input"


def test_a_large_realistic_stream_loads_quickly() -> None:
    doc = (
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app-NUM, labels: {app: a}}\nspec:\n"
        "  replicas: 3\n  template:\n    spec:\n      containers:\n        - name: app\n          image: x:1\n"
        "          env: [{name: A, value: '1'}, {name: B, value: '2'}]\n"
        "          readinessProbe: {httpGet: {path: /health/ready, port: 8000}}\n"
    )
    text = "".join(doc.replace("NUM", str(i)) for i in range(500))
    started = time.perf_counter()
    docs = load(text)
    assert time.perf_counter() - started < 2.0
    assert [d.index for d in docs] == list(range(500))
    assert docs[499].positions[("metadata",)] == (499 * 13 + 4, 1)


def test_one_large_document_loads_in_linear_time() -> None:
    # kubectl get -o yaml of a namespace is one List document; positions must not be rescanned per key.
    item = "  - kind: ConfigMap\n    metadata: {name: cm-NUM, labels: {a: b}}\n    data: {k1: v, k2: v, k3: v}\n"
    text = "kind: List\nitems:\n" + "".join(item.replace("NUM", str(i)) for i in range(3000))
    started = time.perf_counter()
    doc = one(text)
    assert time.perf_counter() - started < 2.0
    assert len(doc.data["items"]) == 3000
    assert doc.positions[("items", 2999, "data", "k3")] == (3 + 2999 * 3 + 2, 26)
