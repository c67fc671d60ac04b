"""Ingestion end to end through the real worker, next to the raw encoders on the same pairs.

A fresh embedded PostgreSQL in a temporary DATA_DIR, migrated by `asifdb db upgrade`; the Celery
worker started with the argv and environment `asifdb up` gives it (launcher.services), and warmed
by a small job; then `asifdb ingest SOURCE --no-wait`, timed until the job is done. Raw: the same
valid pairs through `embed_batch` of the same encoders (image bytes in, as the worker calls them)
in a child process with the worker's allocator settings, before the end-to-end run. Where the
time went comes from the per-stage seconds the worker stores on each batch row.

    flock /tmp/asifdb-bench.lock .venv/bin/python benchmarks/ingest/bench_ingest.py \
        [--limit N] [--raw-limit N] [--batch-size 256] [--source PATH] [--json OUT]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT.parent / "shared" / "data" / "tiny-imagenet-pairs-wds"
WARMUP_ITEMS = 16


def _subset(source: Path, out: Path, limit: int) -> Path:
    """A webdataset folder with the first `limit` samples of `source`: its shards, same names
    and sizes (the last one cut), members unchanged. One big shard instead would make every
    batch walk the tar headers of the samples before it, which the real layout does not."""
    out.mkdir(parents=True)
    left = limit
    for shard in sorted(source.glob("*.tar")):
        with tarfile.open(shard) as tar, tarfile.open(out / shard.name, "w") as dest:
            stems = sorted({m.name.rsplit(".", 1)[0] for m in tar.getmembers()})
            wanted = set(stems[:left])
            for member in tar.getmembers():
                if member.name.rsplit(".", 1)[0] in wanted:
                    dest.addfile(member, tar.extractfile(member))
        left -= len(wanted)
        if left <= 0:
            break
    return out


def raw(source: Path, batch_size: int, data_dir: Path, limit: int | None) -> None:
    """Child process: valid pairs of `source` (the first `limit`) through the encoders alone;
    prints JSON."""
    from asifdb.context import Platform
    from asifdb.ingest import ValidItem, iter_items, open_source, validate
    from asifdb.settings import Settings

    opened = open_source(source, roots=[source.parent])
    items = [v for v in (validate(i) for i in iter_items(opened)) if isinstance(v, ValidItem)]
    items = items[:limit]
    encoders = Platform(Settings(data_dir=data_dir), start_embedded=False).encoders
    encoders.image.embed_batch([v.image_bytes for v in items[:batch_size]])  # load, warm
    encoders.text.embed_batch([v.caption for v in items[:batch_size]])
    image_s = text_s = 0.0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        t = time.perf_counter()
        encoders.image.embed_batch([v.image_bytes for v in chunk])
        image_s += time.perf_counter() - t
        t = time.perf_counter()
        encoders.text.embed_batch([v.caption for v in chunk])
        text_s += time.perf_counter() - t
    print(json.dumps({"pairs": len(items), "image_s": image_s, "text_s": text_s}))


class _Load:
    """Samples the 1-minute load average every few seconds while a phase runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(5):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "_Load":
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])

    def describe(self) -> str:
        return f"{min(self.samples):.1f}-{max(self.samples):.1f}"


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "asifdb.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"asifdb {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _job_id(stdout: str) -> int:
    return int(stdout.split("job ")[1].split(":")[0])


def _wait_done(engine, job_id: int, worker: subprocess.Popen, log: Path) -> None:  # noqa: ANN001
    from sqlalchemy import text

    while True:
        with engine.connect() as conn:
            status = conn.execute(
                text("SELECT status FROM jobs WHERE id = :j"), {"j": job_id}
            ).scalar_one()
        if status in ("done", "failed"):
            if status == "failed":
                raise SystemExit(f"job {job_id} failed; worker log: {log}")
            return
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited; its log: {log}")
        time.sleep(0.2)


def _stages(engine, job_id: int) -> dict[str, float]:  # noqa: ANN001
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT key, sum(value::float) FROM job_batches, jsonb_each_text(timings) "
                "WHERE job_id = :j GROUP BY key"
            ),
            {"j": job_id},
        ).all()
    return {key: float(seconds) for key, seconds in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--limit", type=int, help="ingest only the first N samples")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--raw-limit", type=int, help="time the raw encoders on the first N pairs only (all)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary DATA_DIR")
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw:
        raw(args.raw, args.batch_size, args.data_dir, args.raw_limit)
        return

    from asifdb import launcher
    from asifdb.db import embedded
    from asifdb.db.session import make_engine
    from asifdb.encoders import runtime_env
    from asifdb.settings import Settings

    scratch = Path(tempfile.mkdtemp(prefix="asifdb-bench-ingest-"))
    data_dir = scratch / "data"
    source = args.source
    if args.limit:
        source = _subset(args.source, scratch / "source", args.limit)
    # Its own collection: the same items, no duplicates of the measured job's.
    warmup = _subset(args.source, scratch / "warmup", WARMUP_ITEMS)
    worker = None
    try:
        url = embedded.start(data_dir / "pg")
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
        env.update(DATABASE_URL=url, DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1")
        _cli(env, "db", "upgrade")
        _cli(env, "licenses", "create", "bench")

        print(f"source {source}; batch size {args.batch_size}; {os.cpu_count()} cores", flush=True)
        with _Load() as raw_load:
            child = subprocess.run(
                [sys.executable, __file__, "--raw", str(source), "--data-dir", str(data_dir)]
                + ["--batch-size", str(args.batch_size)]
                + (["--raw-limit", str(args.raw_limit)] if args.raw_limit else []),
                env={**env, **runtime_env()},
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        raw_rate = measured["pairs"] / (measured["image_s"] + measured["text_s"])
        print(
            f"raw encoders: {measured['pairs']} pairs, image {measured['image_s']:.1f} s, "
            f"text {measured['text_s']:.1f} s: {raw_rate:.1f} pairs/s "
            f"(load {raw_load.describe()})",
            flush=True,
        )

        service = next(s for s in launcher.services(Settings()) if s.name == "worker")
        log = scratch / "worker.log"
        worker = subprocess.Popen(
            service.argv,
            env={**env, **service.env},
            cwd=launcher.ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        engine = make_engine(url)
        # The worker loads its encoders on its first task: a small job first, as a running
        # platform's worker has long done.
        started = time.perf_counter()
        warm = _job_id(
            _cli(env, "ingest", str(warmup), "--license", "bench", "--collection", "warmup")
        )
        print(f"worker warm after {time.perf_counter() - started:.1f} s (job {warm})", flush=True)

        with _Load() as e2e_load:
            started = time.perf_counter()
            job_id = _job_id(
                _cli(
                    env,
                    "ingest",
                    str(source),
                    "--license",
                    "bench",
                    "--batch-size",
                    str(args.batch_size),
                    "--no-wait",
                )
            )
            _wait_done(engine, job_id, worker, log)
            elapsed = time.perf_counter() - started
        from sqlalchemy import text

        with engine.connect() as conn:
            job = conn.execute(
                text(
                    "SELECT total, done, duplicates, rejected, "
                    "extract(epoch FROM finished_at - created_at) AS seconds "
                    "FROM jobs WHERE id = :j"
                ),
                {"j": job_id},
            ).one()
        stages = _stages(engine, job_id)
        engine.dispose()
        e2e_rate = job.done / elapsed
        results = {
            "source": str(args.source),
            "limit": args.limit,
            "batch_size": args.batch_size,
            "raw_limit": args.raw_limit,
            "raw": {**measured, "pairs_per_s": raw_rate, "load": raw_load.samples},
            "end_to_end": {
                "ready": job.done,
                "duplicates": job.duplicates,
                "rejected": job.rejected,
                "seconds": elapsed,
                "job_seconds": float(job.seconds),
                "pairs_per_s": e2e_rate,
                "load": e2e_load.samples,
                "stages": stages,
            },
            "ratio": e2e_rate / raw_rate,
        }
        print(
            f"end to end: {job.done} ready, {job.duplicates} duplicates, {job.rejected} "
            f"rejected in {elapsed:.1f} s (job row: {float(job.seconds):.1f} s): "
            f"{e2e_rate:.1f} pairs/s (load {e2e_load.describe()})"
        )
        print(f"end to end / raw: {100 * e2e_rate / raw_rate:.0f}%")
        print("\n| stage (worker, summed over batches) | seconds | share of the run |")
        print("| --- | ---: | ---: |")
        for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
            print(f"| {stage} | {seconds:.1f} | {100 * seconds / elapsed:.0f}% |")
        rest = elapsed - sum(stages.values())
        print(
            f"| rest (commit, broker, task overhead) | {rest:.1f} | {100 * rest / elapsed:.0f}% |"
        )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        embedded.stop(data_dir / "pg")
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
