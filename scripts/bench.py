#!/usr/bin/env python3
"""pgsafe's benchmark: backup and restore against the usual ways of doing the same job, in one run.

Every command runs --runs times, interleaved (round-robin), and the script prints the median
wall time, CPU time (user+sys of all the command's processes) and peak RSS (its largest process),
stored sizes, ratios, and the targets of docs/benchmarks.md. The peers use the same s3s-fs server
as pgsafe. Needs the environment of scripts/env.sh; run it through scripts/bench.sh.
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
AWS = "/usr/bin/aws"  # Debian's awscli, not whatever else PATH holds
BUCKET = os.environ["PGSAFE_TEST_S3S_BUCKET"]
S3_ROOT = os.environ["PGSAFE_TEST_S3S_ROOT"]
ENDPOINT = os.environ["PGSAFE_TEST_S3S_ENDPOINT"]


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


def sh(cmd, env):
    subprocess.run(["sh", "-c", cmd], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(shell, env, setup=None):
    """Runs a shell command under GNU time; returns wall s, CPU s, peak RSS MiB. `setup` runs
    first, untimed."""
    if setup:
        sh(setup, env)
    with tempfile.NamedTemporaryFile("r") as out:
        start = time.monotonic()
        r = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", out.name, "sh", "-c", shell],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - start
        if r.returncode != 0:
            sys.exit(f"benchmark command failed ({r.returncode}): {shell}\n{r.stderr[-2000:]}")
        user, sys_, rss_kib = out.read().split()[-3:]
    return wall, float(user) + float(sys_), int(rss_kib) / 1024


def tree_size(path, only=""):
    """Bytes of a file, or of the files under a directory whose name contains `only`."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for dirpath, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files if only in f)
    return total


def run_rounds(commands, runs, env):
    """commands: (name, shell, setup or None, size function or None)."""
    results = {c[0]: [] for c in commands}
    sizes = {}
    for r in range(runs):
        for name, shell, setup, size in commands:
            results[name].append(measure(shell, env, setup))
            if size:
                sizes[name] = size()
            print(f"run {r + 1}/{runs}: {name}: {results[name][-1][0]:.1f}s", file=sys.stderr)
    return {name: {"wall_s": statistics.median(w for w, _, _ in v),
                   "cpu_s": statistics.median(c for _, c, _ in v),
                   "peak_rss_mib": max(m for _, _, m in v),
                   "stored_mib": sizes.get(name, 0) / 2**20}
            for name, v in results.items()}


def report(title, rows, baseline):
    base = rows[baseline]["wall_s"]
    print(f"\n{title}")
    header = f"| {'command':52} | wall s | vs {'baseline':8} | CPU s | peak RSS MiB | stored MiB |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for name, r in rows.items():
        stored = f"{r['stored_mib']:10.1f}" if r["stored_mib"] else f"{'-':>10}"
        shown = name.replace("|", "\\|")
        print(f"| {shown:52} | {r['wall_s']:6.1f} | {r['wall_s'] / base:10.2f}x | {r['cpu_s']:5.1f} "
              f"| {r['peak_rss_mib']:12.1f} | {stored} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=750, help="generate_large.sql scale (750 = ~1 GB on disk)")
    ap.add_argument("--scaling-scale", type=int, default=2250, help="the ~3x database for the memory check")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tuned", default="--compression-level 1",
                    help="pgsafe backup flags measured beside the defaults (default: the fastest zstd level)")
    ap.add_argument("--smoke", action="store_true", help="tiny databases, one run, targets not judged (CI)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if args.smoke:
        args.scale, args.scaling_scale, args.runs = 2, 4, 1

    db = f"pgsafe_bench_{args.scale}"
    ensure_database(db, args.scale)
    db_size = int(psql(db, f"SELECT pg_database_size('{db}')"))
    work = tempfile.mkdtemp(prefix="pgsafe-bench.")
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": PORT, "PGUSER": "postgres", "PGPASSWORD": PASSWORD,
           "PGDATABASE": db, "PGSAFE_NO_PROGRESS": "1",
           "AWS_ACCESS_KEY_ID": os.environ["PGSAFE_TEST_S3S_ACCESS_KEY"],
           "AWS_SECRET_ACCESS_KEY": os.environ["PGSAFE_TEST_S3S_SECRET_KEY"],
           "AWS_ENDPOINT_URL": ENDPOINT, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "RESTIC_PASSWORD": "pgsafe-bench",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    s3 = f"s3://{BUCKET}"
    aws = f"{AWS} --endpoint-url {ENDPOINT} s3 cp --only-show-errors"
    bucket_dir = os.path.join(S3_ROOT, BUCKET)

    # restic keeps its repository on the same S3 server (its s3 backend), a new one each run so
    # its size is that of one backup (later backups of a real repository deduplicate).
    restic_repo = f"s3:{ENDPOINT}/{BUCKET}/restic"
    restic_init = f"rm -rf {os.path.join(bucket_dir, 'restic')} && restic -q -r {restic_repo} init"

    fresh = lambda p: f"rm -rf {os.path.join(bucket_dir, p)}"
    backups = [
        ("pg_dump -Fc > file", f"{PGBIN}/pg_dump -Fc -f {work}/fc.dump", None,
         lambda: os.path.getsize(f"{work}/fc.dump")),
        ("pg_dump -Fc -Z0 > /dev/null", f"{PGBIN}/pg_dump -Fc -Z0 > /dev/null", None, None),
        ("pg_dump -Fc | aws s3 cp -", f"{PGBIN}/pg_dump -Fc | {aws} - {s3}/peers/stream.dump", None,
         lambda: tree_size(os.path.join(bucket_dir, "peers", "stream.dump"))),
        ("pg_dump -Fc > file; aws s3 cp file", f"{PGBIN}/pg_dump -Fc -f {work}/two.dump && {aws} {work}/two.dump {s3}/peers/two.dump && rm {work}/two.dump",
         None, lambda: tree_size(os.path.join(bucket_dir, "peers", "two.dump"))),
        ("pg_dump -Fc | restic backup --stdin", f"{PGBIN}/pg_dump -Fc | restic -q -r {restic_repo} backup --stdin --stdin-filename {db}.dump",
         restic_init, lambda: tree_size(os.path.join(bucket_dir, "restic"))),
        ("pg_dump -Fc -Z0 | zstd -3 -T2 | aws s3 cp -", f"{PGBIN}/pg_dump -Fc -Z0 | zstd -q -3 -T2 | {aws} - {s3}/peers/pipe.dump.zst",
         None, lambda: tree_size(os.path.join(bucket_dir, "peers", "pipe.dump.zst"))),
        ("pgsafe backup (defaults)", f"{PGSAFE} backup --repo {s3}/pgsafe-default", fresh("pgsafe-default"),
         lambda: tree_size(os.path.join(bucket_dir, "pgsafe-default"), ".dump")),
        (f"pgsafe backup {args.tuned}", f"{PGSAFE} backup --repo {s3}/pgsafe-tuned {args.tuned}", fresh("pgsafe-tuned"),
         lambda: tree_size(os.path.join(bucket_dir, "pgsafe-tuned"), ".dump")),
    ]
    b = run_rounds(backups, args.runs, env)

    target = f"{db}_restored"
    drop = f"{PGBIN}/dropdb --if-exists --force {target}"
    url = f"postgresql://postgres@127.0.0.1:{PORT}/{target}"
    restore = (f"restore latest --database {db} --target {url} --confirm {target} --reason benchmark "
               f"--no-safety-backup --audit-log {work}/audit.log")
    restores = [
        ("pg_restore -j 2 < local file", f"{PGBIN}/createdb {target} && {PGBIN}/pg_restore -j 2 --no-owner --no-acl -d {target} {work}/fc.dump", drop, None),
        ("aws s3 cp - | pg_restore", f"{PGBIN}/createdb {target} && {aws} {s3}/peers/stream.dump - | {PGBIN}/pg_restore --no-owner --no-acl -d {target}", drop, None),
        ("pgsafe restore (defaults)", f"{PGSAFE} {restore} --repo {s3}/pgsafe-default", drop, None),
        (f"pgsafe restore of the {args.tuned} backup", f"{PGSAFE} {restore} --repo {s3}/pgsafe-tuned", drop, None),
    ]
    r = run_rounds(restores, args.runs, env)
    sh(drop, env)

    # Memory against database size: the same pgsafe backup and restore on a ~3x database.
    big = f"pgsafe_bench_{args.scaling_scale}"
    ensure_database(big, args.scaling_scale)
    big_env = {**env, "PGDATABASE": big}
    big_restore = restore.replace(f"--database {db}", f"--database {big}")
    scaling = run_rounds([
        ("pgsafe backup (defaults), 3x database", f"{PGSAFE} backup --repo {s3}/pgsafe-big", fresh("pgsafe-big"), None),
        ("pgsafe restore (defaults), 3x database", f"{PGSAFE} {big_restore} --repo {s3}/pgsafe-big", drop, None),
    ], 1, big_env)
    sh(drop, env)
    big_size = int(psql(big, f"SELECT pg_database_size('{big}')"))

    raw = int(subprocess.run(f"{PGBIN}/pg_dump -Fc -Z0 | wc -c", shell=True, env=env, check=True,
                             capture_output=True, text=True).stdout)
    print(f"\ndatabase {db}: {db_size / 2**20:.0f} MiB on disk, {raw / 2**20:.0f} MiB uncompressed archive; "
          f"{args.runs} runs each, medians. 3x database {big}: {big_size / 2**20:.0f} MiB on disk.")
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().release}")
    report("backup (to the s3s-fs server on 127.0.0.1 unless a file is named)", b, "pg_dump -Fc > file")
    report("restore into a new database (pgsafe: download, verify, pg_restore -j 2, integrity check)", r,
           "aws s3 cp - | pg_restore")
    report("memory on the 3x database (1 run)", scaling, "pgsafe backup (defaults), 3x database")

    peer = b["pg_dump -Fc | aws s3 cp -"]
    best = min((b["pgsafe backup (defaults)"], "defaults"), (b[f"pgsafe backup {args.tuned}"], args.tuned),
               key=lambda x: x[0]["wall_s"])
    checks = [
        ("backup wall <= 0.40x pg_dump -Fc | aws s3 cp - (defaults)",
         b["pgsafe backup (defaults)"]["wall_s"] / peer["wall_s"], 0.40),
        ("backup stored size <= pg_dump -Fc | aws s3 cp - (defaults)",
         b["pgsafe backup (defaults)"]["stored_mib"] / peer["stored_mib"], 1.0),
        ("restore wall <= 0.80x aws s3 cp - | pg_restore (defaults)",
         r["pgsafe restore (defaults)"]["wall_s"] / r["aws s3 cp - | pg_restore"]["wall_s"], 0.80),
        ("backup overhead over pg_dump -Fc -Z0 > /dev/null <= 1.15x (defaults)",
         b["pgsafe backup (defaults)"]["wall_s"] / b["pg_dump -Fc -Z0 > /dev/null"]["wall_s"], 1.15),
        (f"backup overhead over pg_dump -Fc -Z0 > /dev/null <= 1.15x ({args.tuned})",
         b[f"pgsafe backup {args.tuned}"]["wall_s"] / b["pg_dump -Fc -Z0 > /dev/null"]["wall_s"], 1.15),
        ("backup peak RSS < 100 MiB", b["pgsafe backup (defaults)"]["peak_rss_mib"] / 100, 1.0),
        ("restore peak RSS < 100 MiB", r["pgsafe restore (defaults)"]["peak_rss_mib"] / 100, 1.0),
        ("backup peak RSS on 3x database <= 1.10x",
         scaling["pgsafe backup (defaults), 3x database"]["peak_rss_mib"] / b["pgsafe backup (defaults)"]["peak_rss_mib"], 1.10),
        ("restore peak RSS on 3x database <= 1.10x",
         scaling["pgsafe restore (defaults), 3x database"]["peak_rss_mib"] / r["pgsafe restore (defaults)"]["peak_rss_mib"], 1.10),
    ]
    print("\ntargets" + (" (smoke run: not judged)" if args.smoke else ""))
    for name, value, limit in checks:
        verdict = "-" if args.smoke else ("met" if value <= limit else "NOT MET")
        print(f"  {verdict:8} {name}: {value:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"database": db, "db_bytes": db_size, "raw_archive_bytes": raw, "runs": args.runs,
                       "backup": b, "restore": r, "scaling": scaling,
                       "targets": [{"target": n, "value": v, "limit": l} for n, v, l in checks]}, f, indent=2)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
