//! Arbiter beside `cedar-policy` and `casbin` on the same workload (`arbiter_core::workload`),
//! single thread, in process. For each size it loads the same organization into the three
//! engines (see `arbiter_peers` for how each is modelled), asserts that all three reach the
//! expected decision on every check of the stream, and only then times them, one check at a
//! time: median, p99, checks per second, and the heap each engine holds for the data (a
//! counting allocator), and the ratios of medians and of checks per second. It prints one
//! Markdown table row per engine and size.
//!
//! `ARBITER_BENCH_SIZES=1000,10000,100000` chooses the sizes (default 1000 and 10000).
//! `ARBITER_BENCH_PEER_CHECKS` sets how many checks each peer is timed on (default 20,000).
//! `ARBITER_BENCH_ROUNDS` sets how many rounds the engines take turns in (default 1: each engine
//! timed in one block, one after the other).

// Benchmarks fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use arbiter_core::workload::{generate, CountingAllocator, Workload};
use arbiter_peers::{ArbiterPeer, CasbinPeer, CedarPeer};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Loads an engine, returning it with the heap bytes it holds and the time loading took.
fn load<T>(load: impl FnOnce() -> T) -> (T, isize, Duration) {
    let before = CountingAllocator::live_bytes();
    let started = Instant::now();
    let engine = load();
    (
        engine,
        CountingAllocator::live_bytes() - before,
        started.elapsed(),
    )
}

struct Timing {
    median: Duration,
    p99: Duration,
    per_second: f64,
}

/// What reading the clock twice costs, to take off each sample.
fn clock_overhead() -> Duration {
    let mut samples: Vec<Duration> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            black_box(());
            t.elapsed()
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// How many rounds the engines take turns in (`ARBITER_BENCH_ROUNDS`), each engine's checks
/// spread over them, so that a stretch of seconds in which the machine's neighbours slow it down
/// falls on every engine alike. One by default: in 20 rounds at 100,000 users, Arbiter and the
/// baselines were two to six times slower than in one, for a cause the day's noise left
/// unsettled (see the README).
fn rounds() -> usize {
    env_list("ARBITER_BENCH_ROUNDS", &[1])
        .first()
        .copied()
        .unwrap_or(1)
        .max(1)
}

/// One engine under the clock: the checks it answers and what it has measured so far.
struct Timed<'a> {
    decide: &'a dyn Fn(usize) -> bool,
    /// Checks each round: timed one at a time, then as many again in one run. Rounded up, so an
    /// engine may be timed on a few more checks than asked, never fewer.
    per_round: usize,
    /// Where in the stream the next round starts.
    next: usize,
    samples: Vec<Duration>,
    run: Duration,
    run_checks: usize,
}

impl<'a> Timed<'a> {
    fn new(count: usize, rounds: usize, decide: &'a dyn Fn(usize) -> bool) -> Self {
        assert!(count > 0, "an engine is timed on at least one check");
        let per_round = count.div_ceil(rounds);
        Timed {
            decide,
            per_round,
            next: 0,
            samples: Vec::with_capacity(per_round * rounds),
            run: Duration::ZERO,
            run_checks: 0,
        }
    }

    /// One round: the checks about to be timed answered once to warm the caches and branch
    /// predictors (the other engines had them last), then timed one at a time for the median
    /// and p99 (less the clock's own cost), then in one run without the clock for checks per
    /// second.
    fn round(&mut self, stream: usize, overhead: Duration) {
        let decide = self.decide;
        let first = self.next;
        for n in first..first + self.per_round.min(stream) {
            black_box(decide(n % stream));
        }
        for n in first..first + self.per_round {
            let t = Instant::now();
            black_box(decide(n % stream));
            self.samples.push(t.elapsed().saturating_sub(overhead));
        }
        let started = Instant::now();
        for n in first..first + self.per_round {
            black_box(decide(n % stream));
        }
        self.run += started.elapsed();
        self.run_checks += self.per_round;
        self.next = (first + self.per_round) % stream;
    }

    fn timing(mut self) -> Timing {
        self.samples.sort_unstable();
        let len = self.samples.len();
        Timing {
            median: self.samples[len / 2],
            p99: self.samples[(len * 99 / 100).min(len - 1)],
            per_second: self.run_checks as f64 / self.run.as_secs_f64(),
        }
    }
}

/// Times each engine on its number of checks of the stream, the engines taking turns over
/// [`rounds`] rounds.
fn time_in_turns<const N: usize>(
    stream: usize,
    overhead: Duration,
    engines: [(usize, &dyn Fn(usize) -> bool); N],
) -> [Timing; N] {
    let rounds = rounds();
    let mut timed = engines.map(|(count, decide)| Timed::new(count, rounds, decide));
    for _ in 0..rounds {
        for engine in &mut timed {
            engine.round(stream, overhead);
        }
    }
    timed.map(Timed::timing)
}

fn row(
    engine: &str,
    users: usize,
    workload: &Workload,
    timing: &Timing,
    bytes: Option<isize>,
    load: Duration,
) {
    let memory = bytes.map_or("–".to_owned(), |b| {
        (b / workload.bindings.max(1) as isize).to_string()
    });
    let load = if load.is_zero() {
        "–".to_owned()
    } else {
        format!("{load:.1?}")
    };
    println!(
        "| {engine} | {users} | {} | {:.2?} | {:.2?} | {:.0} | {memory} | {load} |",
        workload.bindings, timing.median, timing.p99, timing.per_second,
    );
}

fn main() {
    let peer_checks = env_list("ARBITER_BENCH_PEER_CHECKS", &[20_000])[0];
    let overhead = clock_overhead();
    eprintln!("reading the clock twice takes {overhead:?}; each sample is reported without it");
    println!(
        "| engine | users | bindings | median | p99 | checks/s | heap bytes per binding | load |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for users in env_list("ARBITER_BENCH_SIZES", &[1_000, 10_000]) {
        let workload = generate(users, 10_000, 42);
        let stream = workload.checks.len();

        let (arbiter, arbiter_bytes, arbiter_load) = load(|| ArbiterPeer::load(&workload).unwrap());
        let (cedar, cedar_bytes, cedar_load) = load(|| CedarPeer::load(&workload).unwrap());
        let (casbin, casbin_bytes, casbin_load) = load(|| CasbinPeer::load(&workload).unwrap());
        let arbiter_requests = ArbiterPeer::requests(&workload);
        let cedar_requests = CedarPeer::requests(&workload).unwrap();
        let casbin_requests = CasbinPeer::requests(&workload);
        let arbiter_check = |i: usize| arbiter.check(&arbiter_requests[i]);
        let cedar_check = |i: usize| cedar.check(&cedar_requests[i]);
        let casbin_check = |i: usize| casbin.check(&casbin_requests[i]);

        // The raw baselines: the same checks answered from precomputed maps.
        let baseline_strings = workload.baseline_strings();
        let string_keys: Vec<(String, String)> = workload
            .checks
            .iter()
            .map(|c| {
                (
                    format!("{}/p{}", c.user_id, c.project),
                    c.permission.to_string(),
                )
            })
            .collect();
        let by_strings = |i: usize| {
            let (key, permission) = &string_keys[i];
            baseline_strings
                .get(key)
                .is_some_and(|s| s.contains(permission))
        };
        let by_integers = |i: usize| {
            let c = &workload.checks[i];
            workload
                .baseline
                .get(&(c.user as u32, c.project as u32))
                .is_some_and(|s| s.contains(&c.permission))
        };

        // Nothing is timed until every engine gives the expected answer to every check.
        for (i, c) in workload.checks.iter().enumerate() {
            assert_eq!(arbiter_check(i), c.expected, "arbiter, check {i}");
            assert_eq!(cedar_check(i), c.expected, "cedar-policy, check {i}");
            assert_eq!(casbin_check(i), c.expected, "casbin, check {i}");
            assert_eq!(by_strings(i), c.expected, "string baseline, check {i}");
            assert_eq!(by_integers(i), c.expected, "integer baseline, check {i}");
        }

        let [arbiter_timing, strings_timing, integers_timing, cedar_timing, casbin_timing] =
            time_in_turns(
                stream,
                overhead,
                [
                    (1_000_000, &arbiter_check),
                    (1_000_000, &by_strings),
                    (1_000_000, &by_integers),
                    (peer_checks, &cedar_check),
                    (peer_checks, &casbin_check),
                ],
            );
        let w = &workload;
        row(
            "arbiter",
            users,
            w,
            &arbiter_timing,
            Some(arbiter_bytes),
            arbiter_load,
        );
        row(
            "cedar-policy",
            users,
            w,
            &cedar_timing,
            Some(cedar_bytes),
            cedar_load,
        );
        row(
            "casbin",
            users,
            w,
            &casbin_timing,
            Some(casbin_bytes),
            casbin_load,
        );
        row(
            "baseline, string ids",
            users,
            w,
            &strings_timing,
            None,
            Duration::ZERO,
        );
        row(
            "baseline, integer ids",
            users,
            w,
            &integers_timing,
            None,
            Duration::ZERO,
        );
        let ratio = |t: &Timing| t.median.as_secs_f64() / arbiter_timing.median.as_secs_f64();
        let ratio_per_second = |t: &Timing| arbiter_timing.per_second / t.per_second;
        eprintln!(
            "{users} users: arbiter is {:.0}x faster than cedar-policy and {:.0}x faster than casbin; \
             {:.1}x the string-id baseline and {:.1}x the integer-id baseline (medians); \
             by checks/s {:.0}x cedar-policy and {:.0}x casbin",
            ratio(&cedar_timing),
            ratio(&casbin_timing),
            1.0 / ratio(&strings_timing),
            1.0 / ratio(&integers_timing),
            ratio_per_second(&cedar_timing),
            ratio_per_second(&casbin_timing),
        );
    }
}
