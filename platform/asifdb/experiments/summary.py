"""Prints the tables of docs/results.md from the experiments' JSON in benchmarks/accuracy/results/.

.venv/bin/python -m asifdb.experiments.summary
"""

import json
from typing import Any

from asifdb.experiments.runner import results_dir


def _load(name: str) -> dict[str, Any] | None:
    path = results_dir() / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _agreement(figures: dict[str, Any]) -> str:
    agreement = figures["engine_agreement_with_classify"]
    return "engine only" if agreement is None else f"{_pct(agreement)} %"


def zero_shot(result: dict[str, Any]) -> None:
    print(
        "| test set | images | ASIF top-1 (max) | top-5 (max) | top-1 (mean) | top-5 (mean) "
        "| 1-NN top-1 | 1-NN top-5 | chance top-1 / top-5 | engine = classify |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, f in result["sets"].items():
        print(
            f"| {name} | {f['images']} | {_pct(f['asif_max']['top1'])} | "
            f"{_pct(f['asif_max']['top5'])} | {_pct(f['asif_mean']['top1'])} | "
            f"{_pct(f['asif_mean']['top5'])} | {_pct(f['nn1_caption_max']['top1'])} | "
            f"{_pct(f['nn1_caption_max']['top5'])} | {_pct(f['chance_top1'])} / "
            f"{_pct(f['chance_top5'])} | {_agreement(f)} |"
        )
    for name, f in result["sets"].items():
        first = {k: v for k, v in f.items() if k.startswith("asif_max_first_")}
        print(f"{name}: {first}, 1-NN mean-over-templates {f['nn1_caption_mean']}")


def scaling(result: dict[str, Any]) -> None:
    for name, f in result["sets"].items():
        print(f"\n{name} ({f['images']} images)\n")
        print("| pairs | ASIF top-1, mean ± std (subsets) | first N pairs | 1-NN top-1 |")
        print("| ---: | ---: | ---: | ---: |")
        for r in f["summary"]:
            print(
                f"| {r['pairs']:,} | {_pct(r['top1_mean'])} ± {_pct(r['top1_std'])} "
                f"({r['subsets']}) | {_pct(r['first_top1'])} | {_pct(r['nn1_top1_mean'])} |"
            )


def grid(result: dict[str, Any]) -> None:
    for name, f in result["sets"].items():
        print(f"\n{name}: best {f['best']}\n")
        print("| k \\ p | " + " | ".join(f"{p:g}" for p in result["ps"]) + " |")
        print("| ---: |" + " ---: |" * len(result["ps"]))
        for k, row in zip(result["ks"], f["top1"], strict=True):
            print(f"| {k} | " + " | ".join(_pct(v) for v in row) + " |")


def domain_pairs(result: dict[str, Any]) -> None:
    small = result["small"]
    print(
        f"before {_pct(result['before']['top1'])}, +all {_pct(result['after']['top1'])} "
        f"({result['all_train']}), revoked {_pct(result['after_revoke']['top1'])} "
        f"{result['after_revoke']['compared_with_before']}"
    )
    print(
        f"small: {_pct(small['top1_mean'])} ± {_pct(small['top1_std'])}: "
        + ", ".join(f"seed {r['seed']} {_pct(r['top1'])}" for r in small["runs"])
    )
    for r in small["runs"]:
        print(f"  seed {r['seed']} back: {r['after_revoke']}")
    print(f"changed by +all: {result['after']['changed_from_before']}")


def influence(result: dict[str, Any]) -> None:
    for name, f in result["sets"].items():
        print(
            f"\n{name}: top-1 {_pct(f['top1'])}, second half {_pct(f['top1_second_half'])}, "
            f"{f['evidence_rows_per_prediction']:.0f} evidence rows a prediction"
        )
        for depth, at in f["depths"].items():
            print(f"  depth {depth}: {at['distribution']}")
            print(f"    in-sample {at['pruned_in_sample']}, held-out {at['pruned_held_out']}")


def backbones(result: dict[str, Any]) -> None:
    sets = list(next(iter(result["zero_shot"].values())))
    steps = result["domain"]
    print(
        "| model | image encoder | text encoder | "
        + " | ".join(f"{s} top-1 / top-5" for s in sets)
        + " | "
        + " | ".join(f"{sets[0]} +{s['domain_pairs']:,} pairs" for s in steps.values())
        + " | revoked: same labels |"
    )
    print("| --- | --- | --- |" + " ---: |" * (len(sets) + len(steps) + 1))
    for name, model in result["models"].items():
        zero = result["zero_shot"][name]
        back = result["after_revoke"][name]["compared_with_before"]
        print(
            f"| {name} | {model['image_encoder']} | {model['text_encoder']} | "
            + " | ".join(f"{_pct(zero[s]['top1'])} / {_pct(zero[s]['top5'])}" for s in sets)
            + " | "
            + " | ".join(_pct(step["models"][name]["top1"]) for step in steps.values())
            + f" | {back['same_label']}/{back['images']} |"
        )
    print("\n| encoder | modality | width | items/s best | median |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, speed in result["throughput"].items():
        print(
            f"| {name} | {speed['modality']} | {speed['dim']} | {speed['per_second_best']} "
            f"| {speed['per_second_median']} |"
        )
    for name, model in result["models"].items():
        if "build" in model:
            print(f"build {name}: {model['build']}")


def other(result: dict[str, Any]) -> None:
    for name, f in result["sets"].items():
        print(name, {k: v for k, v in f.items() if not isinstance(v, list)})


def main() -> None:
    printers = {
        "zero_shot": zero_shot,
        "scaling": scaling,
        "grid": grid,
        "domain_pairs": domain_pairs,
        "influence": influence,
        "ann_vs_exact": other,
        "throughput": other,
        "backbones": backbones,
    }
    timings = []
    for name, printer in printers.items():
        result = _load(name)
        if result is None:
            print(f"\n## {name}: not run")
            continue
        print(f"\n## {name}\n")
        printer(result)
        timings.append((name, result["timing"]))
    print("\n| experiment | wall time | images encoded | load average at end |")
    print("| --- | ---: | ---: | ---: |")
    for name, t in timings:
        print(
            f"| {name} | {t['wall_seconds'] / 60:.1f} min | {t['images_encoded_this_run']} "
            f"| {t['load_average_at_end']:.1f} |"
        )


if __name__ == "__main__":
    main()
