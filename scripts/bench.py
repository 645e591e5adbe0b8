#!/usr/bin/env python3
"""Backup benchmark: pgsafe against pg_dump alone and shell pipelines, in one run.

Runs each command several times, interleaved (round-robin), and prints the median wall time, CPU
time (user+sys of every process of the command) and peak RSS (largest single process), the
stored size, and ratios against `pg_dump -Fc > file`. Needs the environment of scripts/env.sh
(run through scripts/bench.sh).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PGBIN = os.environ["PGSAFE_TEST_PG_BIN"]
PORT = os.environ["PGSAFE_TEST_PG_PORT"]
PASSWORD = os.environ["PGSAFE_TEST_PG_PASSWORD"]
PGSAFE = os.path.join(ROOT, "target", "release", "pgsafe")


def psql(db, sql):
    return subprocess.run(
        [f"{PGBIN}/psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", PORT, "-U", "postgres", "-d", db, "-c", sql],
        env={**os.environ, "PGPASSWORD": PASSWORD}, check=True, capture_output=True, text=True,
    ).stdout.strip()


def ensure_database(db, scale):
    if psql("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{db}'") == "1":
        return
    print(f"generating {db} (scale {scale}); this takes a while", file=sys.stderr)
    psql("postgres", f"CREATE DATABASE {db}")
    for f, extra in (("tickets.sql", []), ("generate_large.sql", ["-v", f"scale={scale}"])):
        subprocess.run(
            [f"{PGBIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", PORT,
             "-U", "postgres", "-d", db, "-f", os.path.join(ROOT, "fixtures", f), *extra],
            env={**os.environ, "PGPASSWORD": PASSWORD}, check=True,
        )
    psql(db, "VACUUM ANALYZE")


def measure(shell, env, setup=None):
    """Runs a shell command under GNU time; returns wall, cpu, peak RSS (MiB). `setup` runs
    first, untimed."""
    if setup:
        subprocess.run(["sh", "-c", setup], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.NamedTemporaryFile("r") as out:
        start = time.monotonic()
        subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", out.name, "sh", "-c", shell],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.monotonic() - start
        user, sys_, rss_kib = out.read().split()[-3:]
    return wall, float(user) + float(sys_), int(rss_kib) / 1024


def run_rounds(commands, runs, env, s3_root, bucket, setup=None):
    results = {name: [] for name, _, _ in commands}
    sizes = {}
    for r in range(runs):
        for name, shell, size in commands:
            if "backup -> s3s-fs" in name:
                shutil.rmtree(os.path.join(s3_root, bucket, "bench"), ignore_errors=True)
            results[name].append(measure(shell, env, setup))
            sizes[name] = size()
            print(f"run {r + 1}/{runs}: {name}: {results[name][-1][0]:.1f}s", file=sys.stderr)
    return results, sizes


def report(commands, results, sizes, baseline):
    base = statistics.median(w for w, _, _ in results[baseline])
    header = f"| {'command':38} | wall s | vs baseline | CPU s | peak RSS MiB | stored MiB |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    table = []
    for name, _, _ in commands:
        wall = statistics.median(w for w, _, _ in results[name])
        cpu = statistics.median(c for _, c, _ in results[name])
        rss = max(m for _, _, m in results[name])
        stored = sizes[name] / 2**20
        table.append({"command": name, "wall_s": wall, "ratio": wall / base, "cpu_s": cpu,
                      "peak_rss_mib": rss, "stored_mib": stored})
        stored_text = f"{stored:10.1f}" if sizes[name] else f"{'-':>10}"
        shown = name.replace("|", "\\|")
        print(f"| {shown:38} | {wall:6.1f} | {wall / base:10.2f}x | {cpu:5.1f} | {rss:12.1f} | {stored_text} |")
    return table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=750, help="generate_large.sql scale (750 = ~1 GB on disk)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    db = f"pgsafe_bench_{args.scale}"
    ensure_database(db, args.scale)
    db_size = int(psql(db, f"SELECT pg_database_size('{db}')"))
    work = tempfile.mkdtemp(prefix="pgsafe-bench.")
    s3_env = {
        "AWS_ACCESS_KEY_ID": os.environ["PGSAFE_TEST_S3S_ACCESS_KEY"],
        "AWS_SECRET_ACCESS_KEY": os.environ["PGSAFE_TEST_S3S_SECRET_KEY"],
        "AWS_ENDPOINT_URL": os.environ["PGSAFE_TEST_S3S_ENDPOINT"],
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": PORT, "PGUSER": "postgres",
           "PGPASSWORD": PASSWORD, "PGDATABASE": db, "PGSAFE_NO_PROGRESS": "1", **s3_env}
    bucket = os.environ["PGSAFE_TEST_S3S_BUCKET"]
    s3_root = os.environ["PGSAFE_TEST_S3S_ROOT"]

    def stored_size_of_last(repo_dir):
        sizes = []
        for dirpath, _, files in os.walk(repo_dir):
            sizes += [os.path.getsize(os.path.join(dirpath, f)) for f in files if ".dump" in f]
        return max(sizes) if sizes else 0

    commands = [
        ("pg_dump -Fc > file", f"{PGBIN}/pg_dump -Fc -f {work}/fc.dump", lambda: os.path.getsize(f"{work}/fc.dump")),
        ("pg_dump -Fc -Z0 > /dev/null", f"{PGBIN}/pg_dump -Fc -Z0 > /dev/null", lambda: 0),
        ("pg_dump -Fc -Z0 | zstd -3 -T2 > file",
         f"{PGBIN}/pg_dump -Fc -Z0 | zstd -q -3 -T2 > {work}/z.dump.zst", lambda: os.path.getsize(f"{work}/z.dump.zst")),
        ("pgsafe backup -> local dir",
         f"rm -rf {work}/repo && {PGSAFE} backup --repo {work}/repo",
         lambda: stored_size_of_last(f"{work}/repo")),
        ("pgsafe backup -> s3s-fs",
         f"{PGSAFE} backup --repo s3://{bucket}/bench",
         lambda: stored_size_of_last(os.path.join(s3_root, bucket, "bench"))),
    ]
    results, sizes = run_rounds(commands, args.runs, env, s3_root, bucket)
    raw = int(subprocess.run(f"{PGBIN}/pg_dump -Fc -Z0 | wc -c", shell=True, env=env, check=True,
                             capture_output=True, text=True).stdout)
    print(f"\ndatabase {db}: {db_size / 2**20:.0f} MiB on disk, {raw / 2**20:.0f} MiB uncompressed archive; "
          f"{args.runs} runs each, medians")
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().release}\n")
    print("backup")
    table = report(commands, results, sizes, "pg_dump -Fc > file")

    # Restores into a new database, from what the backup rounds left: fc.dump, the local
    # repository and the s3s-fs repository. The target is dropped before each run, untimed.
    target = f"{db}_restored"
    url = f"postgresql://postgres@127.0.0.1:{PORT}/{target}"
    drop = f"{PGBIN}/dropdb --if-exists --force {target}"
    common = (f"--target {url} --confirm {target} --reason benchmark --no-safety-backup "
              f"--database {db} --audit-log {work}/audit.log")
    restores = [
        ("pg_restore -j 2 from a local file",
         f"{PGBIN}/createdb {target} && {PGBIN}/pg_restore -j 2 --no-owner --no-acl -d {target} {work}/fc.dump",
         lambda: 0),
        ("pgsafe restore (A) from local dir", f"{PGSAFE} restore latest --repo {work}/repo {common}", lambda: 0),
        ("pgsafe restore (A) from s3s-fs", f"{PGSAFE} restore latest --repo s3://{bucket}/bench {common}", lambda: 0),
    ]
    r_results, r_sizes = run_rounds(restores, args.runs, env, s3_root, bucket, setup=drop)
    subprocess.run(["sh", "-c", drop], env=env, check=True)
    print("\nrestore (download, verify, restore and integrity check included for pgsafe)")
    table += report(restores, r_results, r_sizes, "pg_restore -j 2 from a local file")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"database": db, "db_bytes": db_size, "runs": args.runs, "results": table}, f, indent=2)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
