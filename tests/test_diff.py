"""Diff engine on hand-built architectures (fast, no framework)."""


from tensorboard_archviz import diff, schema


def chain(layers, frozen=(), model_name="m"):
    """A sequential architecture from [(id, class_name, units)], Dense-like params."""
    nodes, edges = [], []
    prev_units = 8
    total = trainable = 0
    for i, (node_id, cls, units) in enumerate(layers):
        p = prev_units * units + units if cls == "Dense" else 0
        t = 0 if node_id in frozen else p
        nodes.append(schema.Node(node_id, node_id, cls, output_shapes=[[None, units]],
                                 params={"trainable": t, "non_trainable": p - t},
                                 config={"units": units} if cls == "Dense" else {}))
        if i:
            edges.append(schema.Edge(layers[i - 1][0], node_id, [None, prev_units]))
        prev_units = units
        total += p
        trainable += t
    return schema.Architecture("keras", "3.15.1",
                               schema.ModelInfo(model_name, "Sequential", total, trainable,
                                                total - trainable),
                               inputs=[layers[0][0]], outputs=[layers[-1][0]],
                               nodes=nodes, edges=edges)


BASE = [("in", "InputLayer", 8), ("dense", "Dense", 16), ("dense_1", "Dense", 4)]


def test_identical_is_no_change():
    d = diff.diff_architectures(chain(BASE), chain(BASE))
    assert d["identical"] is True
    assert d["added"] == d["removed"] == d["changed"] == d["renamed"] == []
    assert d["edges_added"] == d["edges_removed"] == []
    assert d["summary"] == "no changes"
    assert d["totals"]["total_params"] == {"a": 212, "b": 212, "delta": 0}


def test_width_change():
    wide = [("in", "InputLayer", 8), ("dense", "Dense", 32), ("dense_1", "Dense", 4)]
    d = diff.diff_architectures(chain(BASE), chain(wide))
    assert d["added"] == [] and d["removed"] == []
    changed = {c["id_a"]: c["fields"] for c in d["changed"]}
    assert changed["dense"]["config.units"] == {"a": 16, "b": 32}
    assert changed["dense"]["params.trainable"] == {"a": 144, "b": 288}
    assert changed["dense_1"]["params.trainable"] == {"a": 68, "b": 132}
    assert d["totals"]["total_params"]["delta"] == 208
    assert d["summary"] == "2 changed, params +208 (+98.1 %)"


def test_inserted_layer():
    deeper = [("in", "InputLayer", 8), ("dense", "Dense", 16), ("dropout", "Dropout", 16),
              ("dense_1", "Dense", 4)]
    d = diff.diff_architectures(chain(BASE), chain(deeper))
    assert d["added"] == ["dropout"]
    assert d["removed"] == [] and d["changed"] == []
    assert d["edges_added"] == [{"source": "dense", "target": "dropout"},
                                {"source": "dropout", "target": "dense_1"}]
    assert d["edges_removed"] == [{"source": "dense", "target": "dense_1"}]
    assert d["summary"] == "+1 layer"


def test_removed_layer_and_sign():
    shallower = [("in", "InputLayer", 8), ("dense_1", "Dense", 4)]
    d = diff.diff_architectures(chain(BASE), chain(shallower))
    assert d["removed"] == ["dense"]
    assert d["summary"].startswith("\u22121 layer")


def test_renamed_layers_matched_structurally():
    # A second Keras session names the same layers dense_3 / dense_4; a spurious "dense_1"
    # in B's last position must not steal the match from the structure.
    renamed = [("input_layer_1", "InputLayer", 8), ("dense_3", "Dense", 16),
               ("dense_4", "Dense", 4)]
    d = diff.diff_architectures(chain(BASE), chain(renamed))
    assert d["added"] == [] and d["removed"] == [] and d["changed"] == []
    assert d["renamed"] == [{"id_a": "in", "id_b": "input_layer_1"},
                            {"id_a": "dense", "id_b": "dense_3"},
                            {"id_a": "dense_1", "id_b": "dense_4"}]
    assert d["edges_added"] == d["edges_removed"] == []
    assert d["identical"] is False  # a rename is a change (the timeline says the same)
    assert d["summary"] == "3 renamed"


def test_frozen_to_unfrozen_detected():
    a = chain(BASE, frozen={"dense"})
    b = chain(BASE)
    d = diff.diff_architectures(a, b)
    fields = {c["id_a"]: c["fields"] for c in d["changed"]}
    assert fields["dense"]["trainable"] == {"a": "frozen", "b": "trainable"}
    assert fields["dense"]["params.non_trainable"] == {"a": 144, "b": 0}
    assert d["totals"]["trainable_params"] == {"a": 68, "b": 212, "delta": 144}
    assert d["highlights"] == ["dense unfrozen", "trainable params 68 \u2192 212"]
    assert d["summary"] == "1 changed"


def test_container_unfreeze_reported_once():
    def arch(frozen):
        p = 0 if frozen else 144
        nodes = [schema.Node("base", "base", "Functional", params={"trainable": p,
                                                                    "non_trainable": 144 - p}),
                 schema.Node("base/dense", "dense", "Dense", parent="base",
                             params={"trainable": p, "non_trainable": 144 - p})]
        return schema.Architecture("keras", "3", schema.ModelInfo("m", "Functional", 144, p,
                                                                  144 - p), nodes=nodes)
    d = diff.diff_architectures(arch(True), arch(False))
    assert d["highlights"] == ["base unfrozen", "trainable params 0 \u2192 144"]


def test_large_graph_uses_anchors_and_stays_correct(monkeypatch):
    monkeypatch.setattr(diff, "MAX_DP_CELLS", 100)
    layers = [("in", "InputLayer", 8)] + [("d%d" % i, "Dense", 8) for i in range(40)]
    more = layers[:20] + [("extra", "Dropout", 8)] + layers[20:]
    d = diff.diff_architectures(chain(layers), chain(more))
    assert d["added"] == ["extra"] and d["removed"] == [] and d["changed"] == []

