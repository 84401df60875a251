"""Schema (de)serialisation speed: `schema.from_json` / `Architecture.to_json` on a synthetic
50,000-node document, side by side with plain `json.loads` / `json.dumps` of the same text (the
floor: everything above it is validation and building the typed dataclasses).

    python bench/bench_schema.py [nodes]
"""
import json
import sys

from tensorboard_archviz import schema
import timing  # noqa: E402  (bench/)


def document(n):
    nodes = [{"id": "n%d" % i, "name": "n%d" % i, "class_name": "Linear", "parent": None,
              "input_shapes": [[1, 8]], "output_shapes": [[1, 8]], "dtype": "float32",
              "params": {"trainable": 72, "non_trainable": 0}, "activation": None,
              "config": {"in_features": 8}, "macs": 64, "calls": 1, "is_container": False,
              "weights": [{"name": "weight", "shape": [8, 8], "trainable": True}],
              "memory": {"params_bytes": 288, "output_bytes": 32}} for i in range(n)]
    edges = [{"source": "n%d" % i, "target": "n%d" % (i + 1), "shape": [1, 8]}
             for i in range(n - 1)]
    return {"schema_version": 2, "framework": "torch", "framework_version": "2",
            "model": {"name": "m", "class_name": "M", "total_params": 72 * n,
                      "trainable_params": 72 * n, "non_trainable_params": 0, "macs": 64 * n,
                      "macs_complete": True, "batch_size": 1},
            "inputs": [], "outputs": [], "nodes": nodes, "edges": edges,
            "extraction": {"method": "fx"}}


best = timing.min_and_median  # (least, median) seconds of `runs` calls


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    text = json.dumps(document(n))
    arch = schema.from_json(text)
    assert json.loads(arch.to_json()) == json.loads(text)
    loads, _ = best(lambda: json.loads(text))
    read, read_med = best(lambda: schema.from_json(text))
    dumps, _ = best(lambda: json.dumps(json.loads(text)))
    write, write_med = best(lambda: arch.to_json())
    print("%d nodes, %.1f MB of JSON" % (n, len(text) / 1e6))
    print("  from_json %.3f s (median %.3f) vs json.loads %.3f s: %.1fx"
          % (read, read_med, loads, read / loads))
    print("  to_json   %.3f s (median %.3f) vs json.dumps %.3f s: %.1fx"
          % (write, write_med, dumps, write / dumps))


if __name__ == "__main__":
    main()
